"""Log levels that hold in every worker of a server.

A level set through any worker is written to ``loglevels.json`` (read-modify-write under
``loglevels.lock``, replaced atomically). Every worker applies the file when it changes:
before it answers ``/loglevel`` and, in the background, every quarter second, so a worker
that gets no request follows within a second and a new worker starts with the levels.
"""

from __future__ import annotations

import logging
import threading

from common_api.services.loglevels import apply_level, level_name
from common_api.workers.state_dir import (
    StateDir,
    file_lock,
    file_signature,
    read_json,
    write_json_atomically,
)

log = logging.getLogger(__name__)


class SharedLogLevels:
    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._applied: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def levels(self) -> dict[str, str]:
        data = read_json(self._state.loglevels)
        levels = data.get("levels") if isinstance(data, dict) else None
        return dict(levels) if isinstance(levels, dict) else {}

    def publish(self, name: str, levelno: int) -> None:
        """Record that logger ``name`` is at ``levelno`` for every worker."""
        with file_lock(self._state.loglevels_lock, exclusive=True):
            levels = self.levels()
            levels[name] = level_name(levelno)
            write_json_atomically(self._state.loglevels, {"levels": levels})

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
