"""Thread levels: how much a component depends on a periodic thread."""

from __future__ import annotations

from enum import Enum


class ThreadLevel(str, Enum):  # noqa: UP042 -- (str, Enum) is the documented public type
    """How much a component depends on a thread; ``CRITICAL`` and ``HIGH`` decide health."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @classmethod
    def parse(cls, value: str) -> ThreadLevel:
        """Return the level named by ``value``, any case; the error is the seed's 400 message."""
        if isinstance(value, str):
            for level in cls:
                if level.value == value.lower():
                    return level
        valid = ", ".join(level.value for level in cls)
        raise ValueError(f"Invalid level: {value}. Valid values: {valid}")
