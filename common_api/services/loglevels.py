"""Python logger levels: list, read and set, by logger name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from common_api.errors import InvalidInput, NotFound

ROOT_NAME = "root"
MAX_LOGGER_NAME = 256


@dataclass(frozen=True)
class LoggerLevel:
    """A logger's configured level (NOTSET when it inherits) and the level in effect."""

    name: str
    level: str
    effective_level: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "level": self.level, "effective_level": self.effective_level}


def parse_level(text: str) -> int:
    """Return the numeric level named by ``text`` (any case); InvalidInput otherwise."""
    levelno = logging.getLevelNamesMapping().get(text.strip().upper())
    if levelno is None:
        raise InvalidInput(f"Invalid log level: {text}")
    return levelno


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


def _describe(name: str, logger: logging.Logger) -> LoggerLevel:
    return LoggerLevel(name, level_name(logger.level), level_name(logger.getEffectiveLevel()))


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


class LevelPublisher(Protocol):
    """Shares levels with the other processes of a server (see common_api.workers)."""

    def publish(self, name: str, levelno: int) -> None: ...

    def sync(self) -> bool: ...


class LogLevelService:
    """Reads and sets logger levels of this process, and of its peers with a publisher.

    Setting a level for a logger the process has not created yet creates it, so that a
    level can be set ahead of the code that will log there; reading one is a NotFound.
    """

    def __init__(self, publisher: LevelPublisher | None = None) -> None:
        self._publisher = publisher

    def _sync(self) -> None:
        if self._publisher is not None:
            self._publisher.sync()

    def list_levels(self) -> list[LoggerLevel]:
        """The root logger, then every other created logger in name order."""
        self._sync()
        levels = [_describe(ROOT_NAME, logging.getLogger())]
        registry = logging.Logger.manager.loggerDict
        for name in sorted(registry):
            candidate = registry.get(name)
            if isinstance(candidate, logging.Logger):
                levels.append(_describe(name, candidate))
        return levels

    def get_level(self, name: str) -> LoggerLevel:
        self._sync()
        logger = existing_logger(check_logger_name(name))
        if logger is None:
            raise NotFound(f"Logger not found: {name}")
        return _describe(name, logger)

    def set_level(self, name: str, level: str) -> str:
        """Set the level; return its canonical name (``warn`` -> ``WARNING``)."""
        check_logger_name(name)
        levelno = parse_level(level)
        apply_level(name, levelno)
        if self._publisher is not None:
            self._publisher.publish(name, levelno)
        return level_name(levelno)


def render_levels(levels: list[LoggerLevel]) -> str:
    lines = ["=== Loggers and Levels ==="]
    lines.extend(f"{entry.name}: {entry.level}" for entry in levels)
    return "\n".join(lines) + "\n"
