"""One component's health as a row: ``/periodic-threads-health`` read and judged.

A component is *healthy* when it answers 200 with ``"healthy": true``, *unhealthy* when it
answers the health body with ``"healthy": false`` (503), and *unreachable* in every other
case: no connection, a timeout, or an answer that is not the health body (401 without a
token, 404 from a wrong prefix path, a proxy's error page). The reason says which.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from common_api.client import render
from common_api.client.http import Client, Reply, Unreachable

HEALTH_PATH = "/periodic-threads-health"
VERSION_HEADER = "x-common-api-version"
HEALTHY, UNHEALTHY, UNREACHABLE = "healthy", "unhealthy", "unreachable"
STATES = (HEALTHY, UNHEALTHY, UNREACHABLE)
HEADERS = ("URL", "HEALTH", "WORKERS", "VERSION", "UNHEALTHY THREADS / REASON")


@dataclass(frozen=True)
class StatusRow:
    """What ``common-api status`` reports about one component."""

    url: str
    health: str
    reason: str | None = None
    http_status: int | None = None
    workers: int | None = None
    version: str | None = None
    unhealthy_threads: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def thread_labels(self) -> list[str]:
        """``name@pid: reason at FRAME`` (``name`` when the server names no pid, no
        ``: reason`` when it gives none; ``at FRAME`` when the server gives a stalled
        thread's stack: see :func:`stuck_at`) per unhealthy thread."""
        labels = []
        for entry in self.unhealthy_threads:
            name = str(entry.get("name", "?"))
            label = f"{name}@{entry['pid']}" if entry.get("pid") is not None else name
            reason = entry.get("reason")
            label = f"{label}: {reason}" if reason else label
            frame = stuck_at(entry.get("stack"))
            labels.append(f"{label} at {frame}" if frame else label)
        return labels

    def detail(self) -> str:
        if self.health == UNHEALTHY:
            return ", ".join(self.thread_labels()) or (self.reason or "")
        return self.reason or ""

    def cells(self) -> list[str]:
        label = self.health if self.health == HEALTHY else self.health.upper()
        workers = "-" if self.workers is None else str(self.workers)
        return [self.url, label, workers, self.version or "-", self.detail()]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "health": self.health, "reason": self.reason,
                "http_status": self.http_status, "workers": self.workers,
                "version": self.version, "unhealthy_count": len(self.unhealthy_threads),
                "unhealthy_threads": self.unhealthy_threads,
                "elapsed_seconds": round(self.seconds, 3)}


def stuck_at(stack: object) -> str | None:
    """The frame a stalled thread is stuck at: the innermost of its stack (innermost last,
    ``module:function (file:line)``) whose module is not the standard library's, since a
    wait inside ``threading`` says little; the innermost one when all are. None without
    a stack."""
    if not isinstance(stack, list) or not stack:
        return None
    frames = [str(frame) for frame in stack]
    for frame in reversed(frames):
        if frame.split(":", 1)[0].split(".", 1)[0] not in sys.stdlib_module_names:
            return frame
    return frames[-1]


def check(client: Client, url: str) -> StatusRow:
    """Ask one component for its health; never raises for a network or HTTP failure."""
    started = time.monotonic()
    try:
        reply = client.get(url, HEALTH_PATH)
    except Unreachable as error:
        return StatusRow(url, UNREACHABLE, str(error), seconds=time.monotonic() - started)
    return judge(url, reply, client.has_token, time.monotonic() - started)


def judge(url: str, reply: Reply, sent_token: bool, seconds: float = 0.0) -> StatusRow:
    """The row for one health answer."""
    version = reply.headers.get(VERSION_HEADER)
    body = _health_body(reply)
    if body is None:
        return StatusRow(url, UNREACHABLE, _failure(reply, sent_token), reply.status,
                         version=version, seconds=seconds)
    workers = body.get("workers")
    threads = [t for t in body.get("unhealthy_threads") or [] if isinstance(t, dict)]
    healthy = reply.status == 200 and body["healthy"] is True
    reason = None if healthy else _unhealthy_reason(reply, threads)
    return StatusRow(url, HEALTHY if healthy else UNHEALTHY, reason, reply.status,
                     workers if isinstance(workers, int) else None, version, threads, seconds)


def _health_body(reply: Reply) -> dict[str, Any] | None:
    if reply.status not in (200, 503):
        return None
    try:
        body = reply.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("healthy"), bool):
        return None
    return body


def _unhealthy_reason(reply: Reply, threads: list[dict[str, Any]]) -> str:
    if not threads:
        return f"HTTP {reply.status}, no unhealthy thread named"
    reasons = sorted({str(t.get("reason")) for t in threads if t.get("reason")})
    return "; ".join(reasons) or f"{len(threads)} unhealthy threads"


def _failure(reply: Reply, sent_token: bool) -> str:
    if reply.status in (200, 503):
        return f"HTTP {reply.status}: not a common_api health answer"
    return reply.problem(sent_token)


def status_table(rows: list[StatusRow]) -> str:
    body = render.table(HEADERS, [row.cells() for row in rows])
    return body + render.counted([row.health for row in rows], STATES)
