"""What one run of a periodic thread reports, and how a run's return value is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, overload


@dataclass(init=False)
class ThreadRunSummary:
    """What one run of a periodic thread reports: whether it worked, why not, and extra facts.

    LMCache's fields, in LMCache's order. ``timestamp`` (wall-clock start of the run) and
    ``duration_ms`` are filled in by the framework for every run, whatever the run returned.
    ``details`` is this package's older name for ``extra_info`` (keyword and attribute), and
    ``ThreadRunSummary(success, message, details)`` with a bool first still means that, since
    a bool is never a timestamp.
    """

    timestamp: float = 0.0
    duration_ms: float = 0.0
    success: bool = True
    message: str = ""
    extra_info: dict[str, Any] = field(default_factory=dict)

    @overload
    def __init__(self, success: bool, message: str = "",
                 details: Mapping[str, Any] | None = None) -> None: ...

    @overload
    def __init__(self, timestamp: float = 0.0, duration_ms: float = 0.0, success: bool = True,
                 message: str = "", extra_info: Mapping[str, Any] | None = None, *,
                 details: Mapping[str, Any] | None = None) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = _LEGACY_SUMMARY_ARGS if args and isinstance(args[0], bool) else _SUMMARY_ARGS
        values = _bind("ThreadRunSummary", names, args, kwargs,
                       {"timestamp", "duration_ms", "success", "message", "extra_info",
                        "details"})
        if "details" in values:
            if "extra_info" in values:
                raise TypeError("ThreadRunSummary takes extra_info or details, not both")
            values["extra_info"] = values.pop("details")
        extra = values.get("extra_info")
        self.timestamp = values.get("timestamp", 0.0)
        self.duration_ms = values.get("duration_ms", 0.0)
        self.success = values.get("success", True)
        self.message = values.get("message", "")
        self.extra_info = _as_dict(extra)

    @property
    def details(self) -> dict[str, Any]:
        """The same dict as :attr:`extra_info` (this package's earlier name for it)."""
        return self.extra_info

    @details.setter
    def details(self, value: Mapping[str, Any]) -> None:
        self.extra_info = _as_dict(value)

    def to_dict(self) -> dict[str, Any]:
        """A copy with LMCache's keys, as in ``get_status()["last_summary"]``."""
        return {"timestamp": self.timestamp, "duration_ms": self.duration_ms,
                "success": self.success, "message": self.message,
                "extra_info": dict(self.extra_info)}

    def _stamped(self, timestamp: float, duration_ms: float) -> ThreadRunSummary:
        """A copy with the run's timing filled in: what the thread records (the object the run
        returned is left alone, so a summary shared between runs or threads stays as it was)."""
        return ThreadRunSummary(timestamp=timestamp, duration_ms=duration_ms,
                                success=self.success, message=self.message,
                                extra_info=dict(self.extra_info))


def _as_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dict is kept as given (the caller may still fill it, as with LMCache's dataclass)."""
    if value is None:
        return {}
    return value if isinstance(value, dict) else dict(value)


_SUMMARY_ARGS = ("timestamp", "duration_ms", "success", "message", "extra_info")
_LEGACY_SUMMARY_ARGS = ("success", "message", "details")


def _bind(owner: str, positional: tuple[str, ...], args: tuple[Any, ...],
          kwargs: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """Bind ``args`` to the names ``positional`` and merge ``kwargs``, with Python's errors."""
    if len(args) > len(positional):
        raise TypeError(f"{owner}() takes at most {len(positional)} positional arguments "
                        f"here ({len(args)} given)")
    values = dict(zip(positional, args, strict=False))
    for key, value in kwargs.items():
        if key not in allowed:
            raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
        if key in values:
            raise TypeError(f"{owner}() got multiple values for argument {key!r}")
        values[key] = value
    return values


class IrrecoverableException(Exception):
    """Raised by ``execute_fn`` when running again is pointless: the run fails, the thread ends.

    It can be started again with :meth:`PeriodicThread.start` once the cause is fixed.
    """

    __module__ = "common_api.periodic"  # as tracebacks name it: where it is imported from
