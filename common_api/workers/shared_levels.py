"""Log levels that hold in every worker of a server, timed ones included.

A level set through any worker goes to every other live worker over the peer channel (a
``levels`` request carrying the whole levels state, with a ``generation`` that grows with
every change); each applies it before it answers, so when the set answers, every live
worker's own code already logs at the new level, and the workers that did not answer in
time are named with the cause (they apply it from the file, or the next set, once they
run). The set is also written to ``loglevels.json`` (read-modify-write under
``loglevels.lock``, replaced atomically), which is only for workers started later: when
it cannot be written (full, read-only or deleted state directory) the set still holds in
every live worker and says, with the reason, that it was not saved for later ones.

Every worker keeps the newest state it saw (from the file or from a sibling) and carries
out a timed level's revert at its time by itself (its own timer thread, and the runtime's
tick); the first that can rewrites the file. The tick also re-applies the file whenever
it changed (one ``stat``).

A garbled or misshapen file is set aside and written back from the last good levels a
worker read (``state_dir.ParsedFile``), so replacement workers still start at the set
levels and the next set keeps every other logger's level.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common_api.errors import Unavailable, describe_error
from common_api.peer_channel import Replies
from common_api.services.loglevels import Published, Revert, apply_level
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


LEVELS = "levels"  # the peer channel's request: apply this levels state
ANSWER_TIMEOUT = 1.0
TIMER_THREAD = "common-api-level-reverts"
AskSiblings = Callable[[str, object, float], Replies]


def _no_siblings(kind: str, body: object, timeout: float) -> Replies:
    return Replies()


class SharedLogLevels:
    def __init__(self, state: StateDir, ask_siblings: AskSiblings = _no_siblings,
                 answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self._state = state
        self._ask_siblings = ask_siblings
        self.answer_timeout = answer_timeout
        self._applied_generation: int | None = None
        self._applied_signature: tuple[int, int, int] | None = None
        self._known = SharedLevels()  # the newest state seen, from the file or a sibling
        self._lock = threading.Lock()
        self._file = ParsedFile(state.loglevels, _parse, SharedLevels(), _render,
                                state.loglevels_lock)
        self._revert_errors: set[str] = set()
        self._changed = threading.Event()
        self._timer_pid: int | None = None

    def _read(self) -> SharedLevels:
        """The newest levels state: the file's, or a newer one received or set here."""
        try:
            stored = self._file.get()
        except CorruptFile:
            if self._known.generation:
                return self._known
            raise
        except OSError:  # the directory cannot be read: what this worker knows stands
            return self._known
        return stored if stored.generation >= self._known.generation else self._known

    def _read_or_known(self) -> SharedLevels:
        """``_read``, or what this worker knows when the file is corrupt (a change is made
        on top of it and saved over the corrupt file)."""
        try:
            return self._read()
        except CorruptFile:
            return self._known

    def _save(self, value: SharedLevels) -> str | None:
        """Write the file; None, or why it could not be (never raises)."""
        try:
            self._file.write(value)
        except (OSError, Unavailable) as error:
            return str(error) if isinstance(error, Unavailable) else describe_error(error)
        return None

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

    def publish(self, name: str, level: str, revert: Revert | None) -> Published:
        """Set logger ``name`` to ``level`` (until ``revert``) in every live worker."""
        try:
            with file_lock(self._state.loglevels_lock, exclusive=True):
                current, not_saved = self._change(name, level, revert)
        except (OSError, Unavailable):  # no lock to take: the set goes on without it
            current, not_saved = self._change(name, level, revert)
        replies = self._ask_siblings(LEVELS, _render(current), self.answer_timeout)
        late = {pid: f"{cause}, busy or stuck?" if cause.startswith("no answer") else cause
                for pid, cause in sorted(replies.missing.items())}
        return Published(late, not_saved)

    def _change(self, name: str, level: str, revert: Revert | None
                ) -> tuple[SharedLevels, str | None]:
        """Apply the change here, then save it (outside the lock siblings' requests take)."""
        with self._lock:
            previous = self._read_or_known()
            levels, reverts = dict(previous.levels), dict(previous.reverts)
            levels[name] = level
            if revert is None:
                reverts.pop(name, None)
            else:
                reverts[name] = revert
            value = SharedLevels(max(previous.generation + 1, time.time_ns()), levels,
                                 reverts)
            self._adopt(value)
        return value, self._save(value)

    def receive(self, body: object) -> dict[str, int]:
        """The peer channel's ``levels`` request: apply a sibling's newer levels state."""
        try:
            value = _parse(body)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"not a levels state: {error}") from None
        with self._lock:
            self._adopt(value)
            return {"generation": self._applied_generation or 0}

    def _adopt(self, value: SharedLevels) -> bool:
        """Apply ``value`` if it is newer than what this process applies (under _lock)."""
        if self._applied_generation is not None and \
                value.generation <= self._applied_generation:
            return False
        for name, level in value.levels.items():
            levelno = logging.getLevelNamesMapping().get(str(level))
            if levelno is None:
                log.warning("Ignoring unknown shared level %r for logger %r", level, name)
                continue
            apply_level(name, levelno)
        self._applied_generation = value.generation
        if value.generation > self._known.generation:
            self._known = value
        self._changed.set()  # the revert timer looks at the new due time
        return True

    def apply_due(self, now: float) -> list[str]:
        """Carry out the reverts that are due in this worker (each worker does, at their
        time); the file is rewritten when it can be."""
        self.sync()  # a sibling that reverted first has saved it: take that
        try:
            if not any(r.at <= now for r in self._read().reverts.values()):
                return []
        except CorruptFile:
            return []
        try:
            with file_lock(self._state.loglevels_lock, exclusive=True):
                due, problem = self._reverted(now)
        except (OSError, Unavailable):
            due, problem = self._reverted(now)
        if problem is None:
            self._revert_errors.clear()
        elif problem not in self._revert_errors:
            self._revert_errors.add(problem)
            log.warning("A due log level revert is carried out but cannot be saved for "
                        "workers started later yet: %s", problem)
        return due

    def _reverted(self, now: float) -> tuple[list[str], str | None]:
        with self._lock:
            current = self._read_or_known()
            levels, reverts = dict(current.levels), dict(current.reverts)
            due = sorted(name for name, r in reverts.items() if r.at <= now)
            if not due:  # a sibling reverted first (saved while we waited for the lock)
                self._adopt(current)
                return [], None
            for name in due:
                levels[name] = reverts.pop(name).level
            # the same generation in every worker: the revert is one change, made by all
            value = SharedLevels(current.generation + 1, levels, reverts)
            self._adopt(value)
        return due, self._save(value)

    def sync(self) -> bool:
        """Apply the shared levels if the file holds a newer generation than the last one
        applied."""
        signature = file_signature(self._state.loglevels)
        if signature is not None and signature == self._applied_signature:
            return False
        with self._lock:
            try:
                current = self._read()
            except CorruptFile:
                return False  # keep the levels in force; logged when it was set aside
            changed = self._adopt(current)
            self._applied_signature = signature
        return changed

    def listen(self) -> None:
        """Apply the shared levels and carry out reverts at their time in this process
        (once per process, after it started)."""
        self.forget_applied()
        self.sync()
        if self._timer_pid != os.getpid():
            self._timer_pid = os.getpid()
            threading.Thread(target=self._run_reverts, args=(os.getpid(),),
                             name=TIMER_THREAD, daemon=True).start()

    def _run_reverts(self, pid: int) -> None:
        while self._timer_pid == pid:
            due = self.next_due()
            timeout = 1.0 if due is None else min(1.0, max(0.0, due - time.time()))
            self._changed.wait(timeout)
            self._changed.clear()
            try:
                self.apply_due(time.time())
            except Exception:
                log.exception("common_api: the level revert timer failed; it retries")
                time.sleep(0.25)

    def forget_applied(self) -> None:
        """Make the next sync apply the file again (a new process has its own loggers, and
        a fresh lock: the parent's may have been held by a thread the fork left behind)."""
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._applied_generation = None
        self._applied_signature = None
