"""What grew during a window: ``tracemalloc`` over that window only, and the RSS around it.

tracemalloc is started for the window and stopped afterwards, unless the host already
traces (then its tracing, and its frame depth, are left as they were). While it traces,
every allocation of the process pays for a traceback record: the window's cost, measured
in ``benchmarks/bench_profile.py``.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

GROUPS = ("lineno", "traceback", "filename")
TRACEBACK_FRAMES = 25
_IGNORED = (tracemalloc.__file__, __file__, "<frozen importlib._bootstrap>",
            "<frozen importlib._bootstrap_external>", "<unknown>")


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Site:
    """One allocation site (or traceback) and how it changed over the window."""

    frames: tuple[tuple[str, int], ...]
    size_diff: int
    size: int
    count_diff: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"frames": [{"file": file, "line": line} for file, line in self.frames],
                "size_diff": self.size_diff, "size": self.size,
                "count_diff": self.count_diff, "count": self.count}

    def render(self) -> str:
        where = "\n    ".join(f"{file}:{line}" for file, line in self.frames) or "?"
        return (f"{self.size_diff:+,d} B ({self.size:,d} B now), {self.count_diff:+,d} blocks "
                f"({self.count:,d} now)\n    {where}")


@dataclass(frozen=True)
class MemoryReport:
    seconds: float
    group: str
    top: int
    rss_before: int | None
    rss_after: int | None
    traced_before: bool
    by_size: tuple[Site, ...]
    by_count: tuple[Site, ...]
    total_size_diff: int
    total_count_diff: int
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryReport:
        """The inverse of :meth:`to_dict` (another worker's report, read from its file)."""
        def sites(key: str) -> tuple[Site, ...]:
            return tuple(Site(tuple((str(f["file"]), int(f["line"])) for f in site["frames"]),
                              int(site["size_diff"]), int(site["size"]),
                              int(site["count_diff"]), int(site["count"]))
                         for site in data[key])

        return cls(seconds=float(data["duration_seconds"]), group=str(data["group"]),
                   top=int(data["top"]), rss_before=data["rss_before"],
                   rss_after=data["rss_after"], traced_before=bool(data["host_was_tracing"]),
                   by_size=sites("by_size"), by_count=sites("by_count"),
                   total_size_diff=int(data["total_size_diff"]),
                   total_count_diff=int(data["total_count_diff"]), pid=int(data["pid"]))

    def to_dict(self) -> dict[str, Any]:
        rss_diff = (self.rss_after - self.rss_before
                    if self.rss_after is not None and self.rss_before is not None else None)
        return {"duration_seconds": round(self.seconds, 6), "group": self.group,
                "top": self.top, "pid": self.pid,
                "rss_before": self.rss_before, "rss_after": self.rss_after,
                "rss_diff": rss_diff, "host_was_tracing": self.traced_before,
                "total_size_diff": self.total_size_diff,
                "total_count_diff": self.total_count_diff,
                "by_size": [site.to_dict() for site in self.by_size],
                "by_count": [site.to_dict() for site in self.by_count]}

    def render(self) -> str:
        def rss(value: int | None) -> str:
            return "unknown" if value is None else f"{value:,d} B"

        lines = [f"=== Memory growth over {self.seconds:.1f} s (pid {self.pid}, "
                 f"grouped by {self.group}) ===",
                 f"RSS before: {rss(self.rss_before)}", f"RSS after:  {rss(self.rss_after)}",
                 f"Traced growth: {self.total_size_diff:+,d} B in "
                 f"{self.total_count_diff:+,d} blocks", "",
                 f"=== Top {self.top} by size growth ==="]
        lines += [f"{i}. {site.render()}" for i, site in enumerate(self.by_size, 1)]
        lines += ["", f"=== Top {self.top} by count growth ==="]
        lines += [f"{i}. {site.render()}" for i, site in enumerate(self.by_count, 1)]
        return "\n".join(lines) + "\n"


def _site(stat: tracemalloc.StatisticDiff) -> Site:
    frames = tuple((frame.filename, frame.lineno) for frame in reversed(stat.traceback))
    return Site(frames, stat.size_diff, stat.size, stat.count_diff, stat.count)


class MemoryWindow:
    """Traces allocations for one window and reports the sites that grew."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def measure(self, seconds: float, top: int, group: str) -> MemoryReport:
        traced_before = tracemalloc.is_tracing()
        rss_before = resident_bytes()
        if not traced_before:
            tracemalloc.start(TRACEBACK_FRAMES if group == "traceback" else 1)
        started = time.monotonic()
        try:
            before = tracemalloc.take_snapshot()
            self.stop.wait(seconds)
            after = tracemalloc.take_snapshot()
        finally:
            if not traced_before:
                tracemalloc.stop()
        elapsed = time.monotonic() - started
        rss_after = resident_bytes()
        ignore = [tracemalloc.Filter(False, pattern) for pattern in _IGNORED]
        diffs = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), group)
        grew = [stat for stat in diffs if stat.size_diff > 0 or stat.count_diff > 0]
        by_size = sorted(grew, key=lambda stat: -stat.size_diff)[:top]
        by_count = sorted(grew, key=lambda stat: -stat.count_diff)[:top]
        return MemoryReport(
            seconds=elapsed, group=group, top=top, rss_before=rss_before, rss_after=rss_after,
            traced_before=traced_before,
            by_size=tuple(_site(stat) for stat in by_size if stat.size_diff > 0),
            by_count=tuple(_site(stat) for stat in by_count if stat.count_diff > 0),
            total_size_diff=sum(stat.size_diff for stat in diffs),
            total_count_diff=sum(stat.count_diff for stat in diffs))
