"""Output of the client commands: aligned tables for people, JSON for programs, progress.

Tables and JSON go to stdout; the progress line goes to stderr, and only when stderr is a
terminal, so piping stdout (or stderr) to a program never mixes the two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

GAP = "  "
PROGRESS_MIN_TOTAL = 2


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(GAP.join(cells).rstrip())
    return "\n".join(lines) + "\n"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def as_text(body: str) -> str:
    """A server's body as printed: with exactly one final newline."""
    return body if body.endswith("\n") else body + "\n"


def counted(rows: Sequence[str], order: Sequence[str]) -> str:
    """``3 components: 2 healthy, 1 unreachable`` from one state per component."""
    parts = [f"{rows.count(state)} {state}" for state in order if state in rows]
    noun = "component" if len(rows) == 1 else "components"
    return f"{len(rows)} {noun}: {', '.join(parts)}\n"


class Progress:
    """``asked 3/12...`` rewritten in place on a terminal; nothing anywhere else."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self._total = total
        isatty = getattr(stream, "isatty", None)
        self.enabled = total >= PROGRESS_MIN_TOTAL and callable(isatty) and bool(isatty())
        self._width = 0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        line = f"asked {done}/{self._total}..."
        self._width = max(self._width, len(line))
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()

    def finish(self) -> None:
        """Erase the line, so what follows starts on a clean one."""
        if self.enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
