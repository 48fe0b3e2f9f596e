"""Listing, lookup and the health rule over periodic-thread status snapshots.

The service works on status dictionaries (the shape :func:`thread_status` renders) from a
source callable, so the same rules serve one process or every worker of a server.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from common_api.errors import InvalidInput, NotFound
from common_api.periodic import PeriodicThread, ThreadLevel

log = logging.getLogger(__name__)

LEVELS = tuple(level.value for level in ThreadLevel)
HEALTH_LEVELS = frozenset({ThreadLevel.CRITICAL.value, ThreadLevel.HIGH.value})

Status = dict[str, Any]
StatusSource = Callable[[], Iterable[Status]]
ProblemSource = Callable[[], list[dict[str, Any]]]


#: How much of a run's ``extra_info`` (and message) a status shows: nesting depth (deeper
#: values become their ``str()``), entries per container, characters per string. A thread
#: that reports a huge value must not make every status request slow.
_MAX_DEPTH = 4
_MAX_ITEMS = 100
_MAX_CHARS = 2000


def thread_status(thread: PeriodicThread) -> Status:
    """A thread's status as ``/periodic-threads*`` answer it: LMCache's ``get_status()`` with
    the seed's ``last_run_time`` (ISO-8601, local time, null before the first run),
    ``last_run_ago`` to the millisecond, and JSON-safe ``last_summary`` values (a run's
    ``extra_info`` may hold anything; the endpoint must still answer). Keys that a subclass's
    own ``get_status()`` adds are shown too."""
    status = PeriodicThread.get_status(thread)
    if type(thread).get_status is not PeriodicThread.get_status:
        status.update((key, _json_safe(value, 1)) for key, value in _extra_status(thread).items()
                      if key not in status)
    wall = status["last_run_time"]
    status["last_run_time"] = datetime.fromtimestamp(wall).isoformat() if wall else None
    ago = status["last_run_ago"]
    status["last_run_ago"] = None if ago is None else round(ago, 3)
    if status["level"] in HEALTH_LEVELS and status["is_running"] and not status["is_active"]:
        # where a stalled thread is stuck: taken by the process that runs it (and published
        # with its status); a stopped thread is nowhere
        status["stalled_since"] = status["last_run_time"]
        status["stack"] = thread.current_stack()
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


def _extra_status(thread: PeriodicThread) -> dict[str, Any]:
    """What a subclass's own ``get_status()`` adds; nothing if it fails (it must not take the
    endpoint down, and the framework's own fields never come from it)."""
    try:
        extra = thread.get_status()
    except Exception:
        log.exception("get_status() of periodic thread %s failed", thread.name)
        return {}
    return {str(k): v for k, v in extra.items()} if isinstance(extra, dict) else {}


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


def parse_level(value: str) -> str:
    level = value.strip().lower()
    if level not in LEVELS:
        raise InvalidInput(f"Invalid level: {value}. Valid values: {', '.join(LEVELS)}")
    return level


def summarize(statuses: list[Status]) -> dict[str, Any]:
    """The seed's ``summary``; ``by_level`` has every level, empty ones too, as LMCache's
    ``get_summary()`` (a dashboard may read any level without checking it is there)."""
    def counts(members: list[Status]) -> dict[str, int]:
        return {"total": len(members),
                "running": sum(1 for s in members if s["is_running"]),
                "active": sum(1 for s in members if s["is_active"])}

    totals = counts(statuses)
    return {
        "total_count": totals["total"],
        "running_count": totals["running"],
        "active_count": totals["active"],
        "by_level": {level: counts([s for s in statuses if s["level"] == level])
                     for level in LEVELS},
    }


def unhealthy_entry(status: Status) -> dict[str, Any]:
    entry = {
        "name": status["name"],
        "level": status["level"],
        "last_run_ago": status["last_run_ago"],
        "interval": status["interval"],
        "is_running": status["is_running"],
        "reason": "not running" if not status["is_running"] else "no run within 3 intervals",
    }
    if "pid" in status:
        entry["pid"] = status["pid"]
    for key in ("stalled_since", "stack"):
        if key in status:
            entry[key] = status[key]
    return entry


class PeriodicStatusService:
    """Answers the three periodic-thread endpoints from a source of status snapshots.

    ``workers`` counts the processes that serve the component (1 without a state dir);
    ``problems`` lists the workers whose statuses are missing or old (``pid``, ``reason``,
    ``unhealthy``: whether that makes the component unhealthy, as a stopped worker does).
    """

    def __init__(self, source: StatusSource, workers: Callable[[], int] = lambda: 1,
                 problems: ProblemSource = lambda: [],
                 booting: Callable[[], int] = lambda: 0) -> None:
        self._source = source
        self._workers = workers
        self._problems = problems
        self._booting = booting

    def worker_count(self) -> int:
        return self._workers()

    def statuses(self) -> list[Status]:
        return sorted(self._source(), key=lambda s: (s["name"], s.get("pid", 0)))

    def listing(self, level: str | None = None, running_only: bool = False,
                active_only: bool = False) -> dict[str, Any]:
        wanted = parse_level(level) if level is not None else None
        selected = [
            s for s in self.statuses()
            if (wanted is None or s["level"] == wanted)
            and (not running_only or s["is_running"])
            and (not active_only or s["is_active"])
        ]
        return {"summary": summarize(selected), "threads": selected}

    def lookup(self, name: str) -> list[Status]:
        """Every snapshot of the thread called ``name`` (one per process that runs it)."""
        found = [s for s in self.statuses() if s["name"] == name]
        if not found:
            raise NotFound(f"Thread not found: {name}")
        return found

    def describe(self, name: str, own_pid: int) -> dict[str, Any]:
        """The thread's status, preferring this process's entry; with several processes
        running it, every entry is listed under ``workers`` too."""
        found = self.lookup(name)
        primary = next((s for s in found if s.get("pid") == own_pid), found[0])
        if len(found) == 1:
            return primary
        return {**primary, "workers": found}

    def health(self, statuses: list[Status] | None = None) -> dict[str, Any]:
        """The health rule over ``statuses`` (default: the current ones)."""
        current = self.statuses() if statuses is None else statuses
        unhealthy = [unhealthy_entry(s) for s in current
                     if s["level"] in HEALTH_LEVELS and not s["is_active"]]
        problems = self._problems()
        healthy = not unhealthy and not any(p["unhealthy"] for p in problems)
        answer = {"healthy": healthy, "unhealthy_count": len(unhealthy),
                  "unhealthy_threads": unhealthy, "workers": self.worker_count()}
        booting = self._booting()
        if booting:
            answer["booting"] = booting  # started, not answering yet: not a smaller server
        if problems:
            answer["worker_problems"] = problems
        return answer
