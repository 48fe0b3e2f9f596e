"""A thread's status as the HTTP endpoints render it: JSON-safe, ISO-8601 times, and where
a stalled critical or high thread is stuck. Stdlib only (``common_api.periodic``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from common_api.periodic._levels import ThreadLevel

HEALTH_LEVELS = frozenset({ThreadLevel.CRITICAL.value, ThreadLevel.HIGH.value})

#: How much of a run's ``extra_info`` (and message) a status shows: nesting depth (deeper
#: values become their ``str()``), entries per container, characters per string. A thread
#: that reports a huge value must not make every status request slow.
_MAX_DEPTH = 4
_MAX_ITEMS = 100
_MAX_CHARS = 2000


def render_status(status: dict[str, Any], extra: dict[str, Any],
                  stack: Callable[[], list[str]]) -> dict[str, Any]:
    """``status`` (LMCache's ``get_status()`` of the framework) as ``/periodic-threads*``
    answer it: the seed's ``last_run_time`` (ISO-8601, local time, null before the first
    run), ``last_run_ago`` to the millisecond, JSON-safe ``last_summary`` values (a run's
    ``extra_info`` may hold anything; the endpoint must still answer), the keys a subclass's
    own ``get_status()`` adds (``extra``), and for a stalled critical or high thread
    ``stalled_since`` and ``stack`` (taken by the process that runs it)."""
    status = dict(status)
    status.update((key, _json_safe(value, 1)) for key, value in extra.items()
                  if key not in status)
    wall = status["last_run_time"]
    status["last_run_time"] = datetime.fromtimestamp(wall).isoformat() if wall else None
    ago = status["last_run_ago"]
    status["last_run_ago"] = None if ago is None else round(ago, 3)
    if status["level"] in HEALTH_LEVELS and status["is_running"] and not status["is_active"]:
        status["stalled_since"] = status["last_run_time"]
        status["stack"] = stack()
    summary = status["last_summary"]
    if summary is not None:
        status["last_summary"] = {
            "timestamp": _json_number(summary["timestamp"]),
            "duration_ms": _json_number(summary["duration_ms"]),
            "success": bool(summary["success"]),
            "message": _clip(str(summary["message"])),
            "extra_info": _json_safe(summary["extra_info"], 0),
        }
    return status


def _json_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CHARS else f"{text[:_MAX_CHARS]}... ({len(text)} chars)"


def _json_safe(value: object, depth: int) -> Any:
    """``value`` as plain JSON data: other objects, and anything too deep, as ``str()``;
    containers and strings cut to the limits above."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < _MAX_DEPTH and isinstance(value, dict):
        items = list(itertools.islice(value.items(), _MAX_ITEMS))
        shown = {_clip(str(k)): _json_safe(v, depth + 1) for k, v in items}
        if len(value) > _MAX_ITEMS:
            shown["..."] = f"{len(value) - _MAX_ITEMS} more entries"
        return shown
    if depth < _MAX_DEPTH and isinstance(value, list | tuple):
        listed = [_json_safe(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            listed.append(f"... {len(value) - _MAX_ITEMS} more items")
        return listed
    return _clip(str(value))
