"""``common-api profile`` and ``common-api memory`` against a live server."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from client.fleet import Fleet
from client.helpers import run_cli
from support import wait_until

from common_api.client.profile import WindowProgress, format_for

# slow, and the same on every pin of gunicorn and prometheus_client: tox.ini runs it in
# the py311, py313 and min envs only
pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.mark.parametrize(("name", "fmt"), [
    ("flame.svg", "svg"), ("profile.speedscope.json", "speedscope"), ("p.json", "json"),
    ("stacks.txt", "collapsed"), (None, "collapsed")])
def test_the_format_comes_from_the_file_name(name: str | None, fmt: str) -> None:
    assert format_for(name, None) == fmt
    assert format_for(name, "json") == "json"


def test_profile_to_stdout_prints_folded_stacks(fleet: Fleet,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "profile", fleet.healthy.url, "--seconds", "0.5",
                     "--name", "heartbeat")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines and all(line.startswith("heartbeat;") for line in lines)
    assert all(line.rpartition(" ")[2].isdigit() for line in lines)


def test_profile_writes_the_format_its_file_name_says(
        fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    svg, speedscope = tmp_path / "flame.svg", tmp_path / "p.speedscope.json"
    for target in (svg, speedscope):
        result = run_cli(capsys, "profile", fleet.healthy.url, "--seconds", "0.3",
                         "-o", str(target))
        assert result.code == 0, result.err
        assert result.out == ""
        assert result.err.startswith(f"wrote {target} (")
        assert " samples over " in result.err and " Hz" in result.err
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert json.loads(speedscope.read_text())["$schema"].startswith("https://www.speedscope")


def test_profile_over_the_limit_is_the_servers_400_and_exit_one(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "profile", fleet.healthy.url, "--seconds", "3600")
    assert result.code == 1
    assert "HTTP 400: Invalid seconds: 3600 is over the limit" in result.err


def test_profile_last_answers_at_once_from_the_history(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    result = run_cli(capsys, "profile", fleet.healthy.url, "--last", "30", "--name",
                     "heartbeat", "--all-workers")
    assert time.monotonic() - started < 5  # no 30 s window
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines and all(line.startswith("worker ") and ";heartbeat;" in line for line in lines)
    beyond = run_cli(capsys, "profile", fleet.healthy.url, "--last", "601")
    assert beyond.code == 1
    assert "HTTP 400: Invalid last: 601 is beyond the 600 seconds of history kept" in beyond.err


def test_memory_prints_the_report(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "memory", fleet.healthy.url, "--seconds", "0.3", "--top", "3")
    assert result.code == 0, result.err
    assert result.out.startswith("=== Memory growth over")
    assert "=== Top 3 by size growth ===" in result.out
    as_json = run_cli(capsys, "memory", fleet.healthy.url, "--seconds", "0.3", "--json")
    assert json.loads(as_json.out)["top"] == 25


def test_an_unreachable_component_is_one_error_line(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "memory", fleet.stopped, "--seconds", "1")
    assert (result.code, result.out) == (1, "")
    assert result.err == f"common-api memory: {fleet.stopped}: connection refused\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_line_is_shown_on_a_terminal_only_and_erased() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    with WindowProgress(terminal, "profile", 30):
        wait_until(lambda: "\rprofile: 0/30 s" in terminal.getvalue(), 10,
                   message="the progress line")
    with WindowProgress(pipe, "profile", 30) as progress:
        assert not progress.enabled
    assert terminal.getvalue().endswith("\r")
    assert pipe.getvalue() == ""
