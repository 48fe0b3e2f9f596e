"""Python logger levels: list, read and set, by logger name, for good or for a while.

A timed set (``duration`` seconds) records a pending revert: the logger's previous
configured level and when to put it back. A second timed set on the same logger keeps the
first one's previous level; a permanent set cancels the revert. Where the pending reverts
live, and who carries them out, is the publisher's business: this process alone
(``LocalLevels``) or every worker of a server (``common_api.workers.shared_levels``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from common_api.errors import InvalidInput, NotFound
from common_api.periodic import PeriodicThread, ThreadLevel

ROOT_NAME = "root"
MAX_LOGGER_NAME = 256
MAX_DURATION = 7 * 24 * 3600.0
REVERT_CHECK_INTERVAL = 0.25


@dataclass(frozen=True)
class Revert:
    """Put ``level`` back at ``at`` (Unix time)."""

    level: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level,
                "at": datetime.fromtimestamp(self.at).astimezone().isoformat(),
                "in_seconds": round(max(0.0, self.at - time.time()), 3)}


@dataclass(frozen=True)
class LoggerLevel:
    """A logger's configured level (NOTSET when it inherits), the level in effect, and a
    pending revert of a timed level."""

    name: str
    level: str
    effective_level: str
    revert: Revert | None = None
    #: the logger drops every record (``logging.config`` disables existing loggers
    #: unless told not to): its level alone would not say so
    disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "effective_level": self.effective_level,
                "revert": self.revert.to_dict() if self.revert else None,
                "disabled": self.disabled}

    def render(self) -> str:
        line = f"{self.name}: {self.level}"
        if self.disabled:
            line += " (disabled)"
        if self.revert is not None:
            until = datetime.fromtimestamp(self.revert.at).astimezone().isoformat(
                timespec="seconds")
            line += f" (until {until}, then {self.revert.level})"
        return line


@dataclass(frozen=True)
class LevelChange:
    """A level set that every worker applies, except ``unacknowledged``: the workers that
    did not confirm it in time (stopped or stuck), which apply it when they run again."""

    name: str
    level: str
    revert: Revert | None
    unacknowledged: tuple[int, ...] = ()
    # why each of ``unacknowledged`` did not confirm (stopped, busy, its files gone)
    reasons: Mapping[int, str] = field(default_factory=dict)
    #: no logger of that name existed in the answering process: the set created it (a
    #: typo makes a new, silent logger)
    created: bool = False
    #: why the level could not be saved for workers started later (None: it was)
    not_saved: str | None = None

    def _why(self, pid: int) -> str:
        return self.reasons.get(pid, "no acknowledgement in time, stopped or stuck?")

    def render(self) -> str:
        text = f"Set {self.name} level to {self.level} (including all handlers)"
        if self.revert is not None:
            seconds = max(0.0, self.revert.at - time.time())
            text += f" for {seconds:.0f} seconds, then {self.revert.level}"
        if self.not_saved is not None:
            text += f"\nNot saved for workers started later: {self.not_saved}"
        if self.created:
            text += f"\nNo logger named {self.name} existed: it has been created"
        if self.unacknowledged:
            pids = ", ".join(f"{pid} ({self._why(pid)})" for pid in self.unacknowledged)
            who, they, run = (("workers", "they apply", "they run")
                              if len(self.unacknowledged) > 1 else
                              ("worker", "it applies", "it runs"))
            text += f"\nNot yet applied by {who} {pids}; {they} it as soon as {run} again"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"logger_name": self.name, "level": self.level, "handlers_updated": True,
                "revert": self.revert.to_dict() if self.revert else None,
                "unacknowledged_workers": list(self.unacknowledged),
                "unacknowledged_reasons": {str(pid): self._why(pid)
                                           for pid in self.unacknowledged},
                "created": self.created,
                "not_saved_for_later_workers": self.not_saved}


def parse_level(text: str) -> int:
    """Return the numeric level named by ``text`` (any case); InvalidInput otherwise."""
    levelno = logging.getLevelNamesMapping().get(text.strip().upper())
    if levelno is None:
        raise InvalidInput(f"Invalid log level: {text}")
    return levelno


def parse_duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_DURATION:
        raise InvalidInput(f"Invalid duration: {text} (seconds, more than 0 and at most "
                           f"{MAX_DURATION:.0f})")
    return seconds


def level_name(levelno: int) -> str:
    return logging.getLevelName(levelno)


def check_logger_name(name: str) -> str:
    if not name:
        raise InvalidInput("logger_name must not be empty")
    if len(name) > MAX_LOGGER_NAME:
        raise InvalidInput(f"logger_name is longer than {MAX_LOGGER_NAME} characters")
    if not all(" " <= char <= "~" for char in name):
        raise InvalidInput("logger_name must be printable ASCII")
    return name


def existing_logger(name: str) -> logging.Logger | None:
    """The logger called ``name`` if the process has created it; never creates one."""
    if name == ROOT_NAME:
        return logging.getLogger()
    candidate = logging.Logger.manager.loggerDict.get(name)
    return candidate if isinstance(candidate, logging.Logger) else None


def apply_level(name: str, levelno: int) -> None:
    """Set the level of logger ``name`` and of every handler attached to it."""
    logger = logging.getLogger() if name == ROOT_NAME else logging.getLogger(name)
    logger.setLevel(levelno)
    for handler in logger.handlers:
        handler.setLevel(levelno)


@dataclass(frozen=True)
class Published:
    """A set as it went: the workers that did not apply it in time (by pid, with why),
    and why it could not be saved for workers started later (None when it was)."""

    late: Mapping[int, str] = field(default_factory=dict)
    not_saved: str | None = None


class LevelPublisher(Protocol):
    """Keeps levels and pending reverts for this process, or for every worker of a server."""

    def publish(self, name: str, level: str, revert: Revert | None) -> Published:
        """Apply the level here and in every live peer; the peers that did not apply it
        in time, and why it could not be kept for workers started later."""
        ...

    def sync(self) -> bool: ...

    def pending(self) -> dict[str, Revert]: ...

    def apply_due(self, now: float) -> list[str]: ...


class LocalLevels:
    """Pending reverts of this process, carried out by one small background thread."""

    def __init__(self) -> None:
        self._reverts: dict[str, Revert] = {}
        self._lock = threading.Lock()
        self._timer = PeriodicThread("common-api-level-reverts", REVERT_CHECK_INTERVAL,
                                     lambda: self.apply_due(time.time()), level=ThreadLevel.LOW)

    def publish(self, name: str, level: str, revert: Revert | None) -> Published:
        apply_level(name, parse_level(level))
        with self._lock:
            if revert is None:
                self._reverts.pop(name, None)
                return Published()
            self._reverts[name] = revert
        self._timer.start()
        return Published()

    def sync(self) -> bool:
        return False

    def close(self) -> None:
        self._timer.stop(timeout=2.0)

    def pending(self) -> dict[str, Revert]:
        with self._lock:
            return dict(self._reverts)

    def apply_due(self, now: float) -> list[str]:
        with self._lock:
            due = {name: r for name, r in self._reverts.items() if r.at <= now}
            for name in due:
                del self._reverts[name]
        for name, revert in due.items():
            apply_level(name, parse_level(revert.level))
        return sorted(due)


class LogLevelService:
    """Reads and sets logger levels of this process, and of its peers with a publisher.

    Setting a level for a logger the process has not created yet creates it, so that a
    level can be set ahead of the code that will log there; reading one is a NotFound.
    """

    def __init__(self, publisher: LevelPublisher | None = None) -> None:
        self._publisher: LevelPublisher = publisher if publisher is not None else LocalLevels()

    def close(self) -> None:
        """Stop this process's own revert timer (a server's peers keep theirs)."""
        if isinstance(self._publisher, LocalLevels):
            self._publisher.close()

    def _describe(self, name: str, logger: logging.Logger,
                  pending: dict[str, Revert]) -> LoggerLevel:
        return LoggerLevel(name, level_name(logger.level),
                           level_name(logger.getEffectiveLevel()), pending.get(name),
                           disabled=logger.disabled)

    def list_levels(self) -> list[LoggerLevel]:
        """The root logger, then every other created logger in name order."""
        self._publisher.sync()
        pending = self._publisher.pending()
        levels = [self._describe(ROOT_NAME, logging.getLogger(), pending)]
        registry = logging.Logger.manager.loggerDict
        for name in sorted(registry):
            candidate = registry.get(name)
            if isinstance(candidate, logging.Logger):
                levels.append(self._describe(name, candidate, pending))
        return levels

    def get_level(self, name: str) -> LoggerLevel:
        self._publisher.sync()
        logger = existing_logger(check_logger_name(name))
        if logger is None:
            raise NotFound(f"Logger not found: {name}")
        return self._describe(name, logger, self._publisher.pending())

    def set_level(self, name: str, level: str, duration: str | None = None) -> LevelChange:
        """Set the level (for ``duration`` seconds, if given) in every live process; the
        change says which did not apply it in time and whether it was saved for later."""
        check_logger_name(name)
        levelno = parse_level(level)
        created = existing_logger(name) is None
        revert = None
        if duration is not None:
            seconds = parse_duration(duration)
            self._publisher.sync()
            earlier = self._publisher.pending().get(name)
            logger = existing_logger(name)
            previous = earlier.level if earlier is not None else level_name(
                logger.level if logger is not None else logging.NOTSET)
            revert = Revert(previous, time.time() + seconds)
        published = self._publisher.publish(name, level_name(levelno), revert)
        late = published.late
        return LevelChange(name, level_name(levelno), revert, tuple(late), dict(late),
                           created=created, not_saved=published.not_saved)


def render_levels(levels: list[LoggerLevel]) -> str:
    lines = ["=== Loggers and Levels ==="]
    lines.extend(entry.render() for entry in levels)
    return "\n".join(lines) + "\n"
