"""Running ``common-api`` in-process and reading its table."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from common_api.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """``common-api ARGV...`` in this process: exit status, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def row_of(table: str, url: str) -> list[str]:
    """The cells of the table row that starts with ``url`` (split on runs of 2+ spaces)."""
    for line in table.splitlines():
        if line.split("  ", 1)[0] == url:
            return re.split(r" {2,}", line)
    raise AssertionError(f"no row for {url} in:\n{table}")
