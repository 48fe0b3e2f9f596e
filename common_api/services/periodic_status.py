"""Listing, lookup and the health rule over periodic-thread status snapshots.

The service works on status dictionaries (the shape :func:`thread_status` renders) from a
source callable, so the same rules serve one process or every worker of a server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from common_api.errors import InvalidInput, NotFound
from common_api.periodic import PeriodicThread, ThreadLevel
from common_api.periodic._status import HEALTH_LEVELS

log = logging.getLogger(__name__)

LEVELS = tuple(level.value for level in ThreadLevel)

Status = dict[str, Any]
StatusSource = Callable[[], Iterable[Status]]
ProblemSource = Callable[[], list[dict[str, Any]]]


def thread_status(thread: PeriodicThread) -> Status:
    """A thread's status as ``/periodic-threads*`` answer it (``PeriodicThread.status``)."""
    return PeriodicThread.status(thread)


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
