"""Log levels that hold in every worker of a server, timed ones included.

A level set through any worker is written to ``loglevels.json`` (read-modify-write under
``loglevels.lock``, replaced atomically), with its pending revert if it is timed. Every
worker applies the file when it changes: before it answers ``/loglevel`` and, in the
background, every quarter second, so a worker that gets no request follows within a
second and a new worker starts with the levels. The same background tick carries out due
reverts: the first worker to see one rewrites the file, and every worker then applies it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from common_api.services.loglevels import Revert, apply_level
from common_api.workers.state_dir import (
    ParsedFile,
    StateDir,
    file_lock,
    file_signature,
    write_json_atomically,
)

log = logging.getLogger(__name__)


def _parse(data: Any) -> tuple[dict[str, str], dict[str, Revert]]:
    if not isinstance(data, dict):
        return {}, {}
    levels = data.get("levels")
    reverts = data.get("reverts")
    parsed: dict[str, Revert] = {}
    if isinstance(reverts, dict):
        for name, entry in reverts.items():
            try:
                parsed[name] = Revert(str(entry["level"]), float(entry["at"]))
            except (KeyError, TypeError, ValueError):
                log.warning("Ignoring malformed shared revert for logger %r", name)
    return (dict(levels) if isinstance(levels, dict) else {}), parsed


class SharedLogLevels:
    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._applied: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._file = ParsedFile(state.loglevels, _parse)

    def _read(self) -> tuple[dict[str, str], dict[str, Revert]]:
        """The file's levels and reverts (copies), parsed again only when the file changed."""
        levels, reverts = self._file.get()
        return dict(levels), dict(reverts)

    def _write(self, levels: dict[str, str], reverts: dict[str, Revert]) -> None:
        write_json_atomically(self._state.loglevels, {
            "levels": levels,
            "reverts": {name: {"level": r.level, "at": r.at} for name, r in reverts.items()},
        })

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
        if signature is None or signature == self._applied:
            return False
        with self._lock:
            if signature == self._applied:
                return False
            for name, level in self.levels().items():
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
