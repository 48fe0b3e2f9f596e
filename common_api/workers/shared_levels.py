"""Log levels that hold in every worker of a server, timed ones included.

A level set through any worker is written to ``loglevels.json`` (read-modify-write under
``loglevels.lock``, replaced atomically) with its pending revert if it is timed, and a
``generation`` that grows with every write. A set is all or nothing: if the file cannot
be written, nothing is applied anywhere and the set is ``Unavailable`` (503). Once it is
written, the setter applies the file, wakes every other worker and waits (about a second
at most) until each acknowledges that it applies that generation (``level_sync``), so
when the set answers, every live worker's own code already logs at the new level; the
workers that did not answer in time are named, and apply it as soon as they run again.

Every worker's listener also wakes at the time of the earliest pending revert, so each
carries out a timed level's revert at its time; the first to do so rewrites the file.
The runtime's background tick re-applies the file whenever it changed (one ``stat``), a
fallback for a worker that could not be woken.

A garbled or misshapen file is set aside and written back from the last good levels a
worker read (``state_dir.ParsedFile``), so replacement workers still start at the set
levels and the next set keeps every other logger's level.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from common_api.errors import Unavailable
from common_api.services.loglevels import Revert, apply_level
from common_api.workers.level_sync import LevelSync
from common_api.workers.state_dir import (
    CorruptFile,
    ParsedFile,
    StateDir,
    file_lock,
    file_signature,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedLevels:
    """The content of the levels file."""

    generation: int = 0
    levels: dict[str, str] = field(default_factory=dict)
    reverts: dict[str, Revert] = field(default_factory=dict)


def _parse(data: Any) -> SharedLevels:
    """The file's content; ValueError, TypeError or KeyError when it is misshapen (the
    file is then set aside and restored, never taken for 'no levels')."""
    if not isinstance(data, dict):
        raise ValueError("expected an object with 'levels' and 'reverts'")
    levels = data.get("levels", {})
    reverts = data.get("reverts", {})
    generation = data.get("generation", 0)
    if not isinstance(levels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in levels.items()):
        raise ValueError("'levels' is not an object of logger names to level names")
    if not isinstance(reverts, dict):
        raise ValueError("'reverts' is not an object")
    if not isinstance(generation, int) or isinstance(generation, bool):
        raise ValueError("'generation' is not an integer")
    parsed = {name: Revert(str(entry["level"]), float(entry["at"]))
              for name, entry in reverts.items()}
    return SharedLevels(generation, dict(levels), parsed)


def _render(value: SharedLevels) -> Any:
    return {"generation": value.generation, "levels": value.levels,
            "reverts": {name: {"level": r.level, "at": r.at}
                        for name, r in value.reverts.items()}}


def _unpublishable(exc: OSError) -> Unavailable:
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    return Unavailable(f"Log level not changed in any worker: it cannot be shared through "
                       f"the state directory: {reason}{where}")


class SharedLogLevels:
    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._applied_generation: int | None = None
        self._applied_signature: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._file = ParsedFile(state.loglevels, _parse, SharedLevels(), _render,
                                state.loglevels_lock)
        self.sync_channel = LevelSync(state.root)
        self._revert_errors: set[int | None] = set()

    def _read(self) -> SharedLevels:
        return self._file.get()

    def _write(self, previous: SharedLevels, levels: dict[str, str],
               reverts: dict[str, Revert]) -> int:
        """Write the file under the lock; its generation also grows across a file lost and
        recreated (it follows the clock)."""
        generation = max(previous.generation + 1, time.time_ns())
        self._file.write(SharedLevels(generation, levels, reverts))
        return generation

    def levels(self) -> dict[str, str]:
        return dict(self._read().levels)

    def pending(self) -> dict[str, Revert]:
        return dict(self._read().reverts)

    def next_due(self) -> float | None:
        """When the earliest pending revert is due (Unix time), if any."""
        try:
            return min((r.at for r in self._read().reverts.values()), default=None)
        except CorruptFile:
            return None

    def publish(self, name: str, level: str, revert: Revert | None) -> dict[int, str]:
        """Set logger ``name`` to ``level`` (until ``revert``) in every worker; the pids of
        the workers that did not acknowledge in time, each with why. Unavailable if it
        cannot be shared."""
        try:
            with file_lock(self._state.loglevels_lock, exclusive=True):
                current = self._read()
                levels, reverts = dict(current.levels), dict(current.reverts)
                levels[name] = level
                if revert is None:
                    reverts.pop(name, None)
                else:
                    reverts[name] = revert
                generation = self._write(current, levels, reverts)
        except OSError as exc:
            raise _unpublishable(exc) from None
        self.sync()
        return self.sync_channel.wait_for(generation, wake_self=revert is not None)

    def apply_due(self, now: float) -> list[str]:
        """Carry out the reverts that are due; every worker then applies them."""
        try:
            if not any(r.at <= now for r in self._read().reverts.values()):
                return []
        except CorruptFile:
            return []
        try:
            with file_lock(self._state.loglevels_lock, exclusive=True):
                current = self._read()
                levels, reverts = dict(current.levels), dict(current.reverts)
                due = sorted(name for name, r in reverts.items() if r.at <= now)
                for name in due:
                    levels[name] = reverts.pop(name).level
                if due:
                    self._write(current, levels, reverts)
        except OSError as exc:
            # all or nothing: the timed level stays everywhere until the revert can be shared
            if exc.errno not in self._revert_errors:
                self._revert_errors.add(exc.errno)
                log.warning("Cannot carry out a due log level revert yet (it is retried, "
                            "and the timed level holds in every worker meanwhile): %s", exc)
            return []
        self._revert_errors.clear()
        self.sync()
        if due:
            self.sync_channel.wake_all()
        return due

    def sync(self) -> bool:
        """Apply the shared levels if the file holds a newer generation than the last one
        applied, and acknowledge it."""
        signature = file_signature(self._state.loglevels)
        if signature is not None and signature == self._applied_signature:
            return False
        with self._lock:
            try:
                current = self._read()
            except CorruptFile:
                return False  # keep the levels in force; logged when it was set aside
            changed = self._applied_generation is None or \
                current.generation > self._applied_generation
            if changed:
                for name, level in current.levels.items():
                    levelno = logging.getLevelNamesMapping().get(str(level))
                    if levelno is None:
                        log.warning("Ignoring unknown shared level %r for logger %r", level,
                                    name)
                        continue
                    apply_level(name, levelno)
                self._applied_generation = current.generation
                self.sync_channel.acknowledge(current.generation)
            self._applied_signature = signature
        return changed

    def listen(self) -> None:
        """Take part in read-your-writes: be woken by setters, acknowledge what is applied,
        and carry out reverts at their time (once per process, after it started)."""
        self.forget_applied()
        try:
            self.sync_channel.listen(self._on_wake, self.next_due)
        except OSError as exc:
            log.warning("common_api cannot listen for log level changes (%s): this worker "
                        "follows them within its background tick, and level sets do not "
                        "wait for it", exc)
        self.sync()

    def _on_wake(self) -> None:
        self.apply_due(time.time())
        self.sync()

    def forget_applied(self) -> None:
        """Make the next sync apply the file again (a new process has its own loggers, and
        a fresh lock: the parent's may have been held by a thread the fork left behind)."""
        self._lock = threading.Lock()
        self._applied_generation = None
        self._applied_signature = None
