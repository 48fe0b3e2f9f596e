"""Log levels that hold in every worker of a server, timed ones included.

A level set through any worker is written to ``loglevels.json`` (read-modify-write under
``loglevels.lock``, replaced atomically), with its pending revert if it is timed. Every
worker applies the file when it changes: before it answers ``/loglevel`` and, in the
background, every quarter second, so a worker that gets no request follows within a
second and a new worker starts with the levels. The same background tick carries out due
reverts: the first worker to see one rewrites the file, and every worker then applies it.

A garbled file is set aside and written back from the last good levels a worker read
(``state_dir.ParsedFile``), so replacement workers still start at the set levels and the
next set keeps every other logger's level.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from common_api.services.loglevels import Revert, apply_level
from common_api.workers.state_dir import (
    CorruptFile,
    ParsedFile,
    StateDir,
    file_lock,
    file_signature,
)

log = logging.getLogger(__name__)


Levels = tuple[dict[str, str], dict[str, Revert]]


def _parse(data: Any) -> Levels:
    """The file's levels and reverts; ValueError/TypeError/KeyError if it is misshapen."""
    if not isinstance(data, dict):
        raise ValueError("expected an object with 'levels' and 'reverts'")
    levels = data.get("levels", {})
    reverts = data.get("reverts", {})
    if not isinstance(levels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in levels.items()):
        raise ValueError("'levels' is not an object of logger names to level names")
    if not isinstance(reverts, dict):
        raise ValueError("'reverts' is not an object")
    parsed: dict[str, Revert] = {}
    for name, entry in reverts.items():
        parsed[name] = Revert(str(entry["level"]), float(entry["at"]))
    return dict(levels), parsed


def _render(value: Levels) -> Any:
    levels, reverts = value
    return {"levels": levels,
            "reverts": {name: {"level": r.level, "at": r.at} for name, r in reverts.items()}}


class SharedLogLevels:
    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._applied: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._file: ParsedFile[Levels] = ParsedFile(state.loglevels, _parse, ({}, {}), _render,
                                                    state.loglevels_lock)

    @property
    def problem(self) -> str | None:
        """Why the levels file could not be used when last read (None when it could)."""
        return self._file.problem

    def _read(self) -> tuple[dict[str, str], dict[str, Revert]]:
        """The file's levels and reverts (copies), parsed again only when the file changed.
        Raises CorruptFile when the file is garbled and no good copy is known."""
        levels, reverts = self._file.get()
        return dict(levels), dict(reverts)

    def _write(self, levels: dict[str, str], reverts: dict[str, Revert]) -> None:
        self._file.write((levels, reverts))

    def levels(self) -> dict[str, str]:
        return self._read()[0]

    def pending(self) -> dict[str, Revert]:
        return self._read()[1]

    def publish(self, name: str, level: str, revert: Revert | None) -> None:
        """Record that logger ``name`` is at ``level`` for every worker (until ``revert``)."""
        with file_lock(self._state.loglevels_lock, exclusive=True):
            levels, reverts = self._read()
            levels[name] = level
            if revert is None:
                reverts.pop(name, None)
            else:
                reverts[name] = revert
            self._write(levels, reverts)

    def apply_due(self, now: float) -> list[str]:
        """Carry out the reverts that are due; every worker then applies them."""
        if not any(r.at <= now for r in self.pending().values()):
            return []
        with file_lock(self._state.loglevels_lock, exclusive=True):
            levels, reverts = self._read()
            due = sorted(name for name, r in reverts.items() if r.at <= now)
            for name in due:
                levels[name] = reverts.pop(name).level
            if due:
                self._write(levels, reverts)
        self.sync()
        return due

    def sync(self) -> bool:
        """Apply the shared levels if the file changed since the last apply."""
        signature = file_signature(self._state.loglevels)
        if signature == self._applied:
            return False
        with self._lock:
            if signature == self._applied:
                return False
            try:
                shared = self.levels()
            except CorruptFile:
                return False  # keep the levels in force; logged when set aside
            signature = file_signature(self._state.loglevels)
            if signature is None:
                return False
            for name, level in shared.items():
                levelno = logging.getLevelNamesMapping().get(str(level))
                if levelno is None:
                    log.warning("Ignoring unknown shared level %r for logger %r", level, name)
                    continue
                apply_level(name, levelno)
            self._applied = signature
        return True

    def forget_applied(self) -> None:
        """Make the next sync apply the file again (a new process has its own loggers)."""
        self._applied = None
