"""Listing, lookup and the health rule over periodic-thread status snapshots.

The service works on status dictionaries (the shape of ``PeriodicThread.status()``)
from a source callable, so the same rules serve one process or every worker of a
server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from common_api.errors import InvalidInput, NotFound
from common_api.periodic import ThreadLevel

LEVELS = tuple(level.value for level in ThreadLevel)
HEALTH_LEVELS = frozenset({ThreadLevel.CRITICAL.value, ThreadLevel.HIGH.value})

Status = dict[str, Any]
StatusSource = Callable[[], Iterable[Status]]
ProblemSource = Callable[[], list[dict[str, Any]]]


def parse_level(value: str) -> str:
    level = value.strip().lower()
    if level not in LEVELS:
        raise InvalidInput(f"Invalid level: {value}. Valid values: {', '.join(LEVELS)}")
    return level


def summarize(statuses: list[Status]) -> dict[str, Any]:
    by_level: dict[str, dict[str, int]] = {}
    for level in LEVELS:
        members = [s for s in statuses if s["level"] == level]
        if members:
            by_level[level] = {
                "total": len(members),
                "running": sum(1 for s in members if s["is_running"]),
                "active": sum(1 for s in members if s["is_active"]),
            }
    return {
        "total_count": len(statuses),
        "running_count": sum(1 for s in statuses if s["is_running"]),
        "active_count": sum(1 for s in statuses if s["is_active"]),
        "by_level": by_level,
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
    return entry


class PeriodicStatusService:
    """Answers the three periodic-thread endpoints from a source of status snapshots.

    ``workers`` counts the processes that serve the component (1 without a state dir);
    ``problems`` lists the workers whose statuses are missing or old (``pid``, ``reason``,
    ``unhealthy``: whether that makes the component unhealthy, as a stopped worker does).
    """

    def __init__(self, source: StatusSource, workers: Callable[[], int] = lambda: 1,
                 problems: ProblemSource = lambda: []) -> None:
        self._source = source
        self._workers = workers
        self._problems = problems

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
        if problems:
            answer["worker_problems"] = problems
        return answer
