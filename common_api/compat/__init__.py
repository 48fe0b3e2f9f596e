"""Where common_api touches other libraries' private code: one module per library.

Each module (``prometheus``, ``gunicorn``, ``flask``, ``werkzeug``) checks at import that
every private shape it relies on is there in the running version. When one is not, the
one feature built on it is turned off, with one warning in the log and an entry under
``worker_problems`` in ``/periodic-threads-health`` (not unhealthy: the component serves,
without that feature). Nothing falls back silently. This module keeps that record.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from common_api import startup_log

log = logging.getLogger("common_api")


@dataclass(frozen=True)
class FeatureOff:
    """A feature of common_api turned off because its library lacks a shape it needs."""

    feature: str
    library: str
    version: str
    missing: tuple[str, ...]

    def message(self) -> str:
        return (f"common_api: {self.feature} is off: {self.library} {self.version} lacks "
                f"{', '.join(self.missing)}")

    def to_dict(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "reason": self.message().removeprefix("common_api: "),
                "unhealthy": False, "feature": self.feature}


_off: dict[str, FeatureOff] = {}
_lock = threading.Lock()


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _holds(check: Callable[[], object]) -> bool:
    try:
        return bool(check())
    except Exception:  # a shape that is not there fails its check, whatever the error
        return False


def require(feature: str, library: str, shapes: Mapping[str, Callable[[], object]],
            version: str | None = None) -> bool:
    """Whether every shape ``feature`` relies on is there (each named check returns
    true). If one is not, the feature is recorded off and logged once. ``version``: the
    library's, where it is not an installed distribution (the standard library's)."""
    missing = tuple(name for name, check in shapes.items() if not _holds(check))
    if not missing:
        return True
    off = FeatureOff(feature, library, version or installed_version(library), missing)
    with _lock:
        if feature not in _off:
            _off[feature] = off
            startup_log.warn(log, "%s", off.message())
    return False


def is_off(feature: str) -> FeatureOff | None:
    return _off.get(feature)


def problems() -> list[dict[str, Any]]:
    """The features turned off in this process, as ``worker_problems`` entries."""
    with _lock:
        return [off.to_dict() for off in _off.values()]


def has_attributes(function: Callable[..., Any], *names: str) -> bool:
    """Whether ``function``'s code reads or sets every attribute in ``names`` (how a class
    shows the instance attributes its methods create)."""
    code = getattr(function, "__code__", None)
    return code is not None and set(names) <= set(code.co_names)
