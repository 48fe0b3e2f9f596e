"""How one app's endpoints agree with the other workers of its server, if any.

The views and services ask one ``Coordination`` object for what they share with other
processes: the log-level publisher, the reset baseline, the metric sources, the
periodic-thread statuses, the worker count and the workers' problems, and the other
workers' thread dumps and asyncio tasks. ``LocalCoordination`` is a single process (no
state directory); ``SharedDirectoryCoordination`` is every worker of a gunicorn server
through its state directory (``common_api.workers``), where all state-directory faults
are met. Nothing above this package knows which one it has.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from prometheus_client.registry import Collector, CollectorRegistry

from common_api.services.loglevels import LevelPublisher
from common_api.services.metrics import BaselineStore
from common_api.services.periodic_status import Status
from common_api.services.profiler import PeerHistories, PeerWindows
from common_api.services.tasks_workers import WorkerTasks
from common_api.services.threads import PeerDump

PeerDumps = list[PeerDump]


class Coordination(Protocol):
    """What the endpoints share with the other processes of their server."""

    shared: bool  # True when it spans the workers of a server

    def ensure_started(self) -> None:
        """Start this process's side (cheap to call on every request)."""

    def level_publisher(self) -> LevelPublisher | None:
        """Where level changes go (None: this process only)."""

    def expect_workers(self, count: int, register: bool = True) -> None:
        """The server's configured worker count, told at start (booting ones count);
        ``register`` False when its config leaves out common_api's post_worker_init."""

    def baseline_store(self, ordinal: int = 0) -> BaselineStore:
        """Where the reset baseline of the process's app number ``ordinal`` lives (0: the
        first), each app of a process resetting only what it shows."""

    def metric_sources(self, registry: CollectorRegistry, peer_timeout: float = 1.0
                       ) -> list[Collector]:
        """What a scrape collects, besides the periodic-thread series (``registry`` is
        the app's own; ``peer_timeout`` bounds the wait for other workers)."""

    def statuses(self) -> list[Status]:
        """Every periodic thread of every live worker."""

    def start(self) -> None:
        """Start this process's side of the coordination (idempotent)."""

    def worker_count(self) -> int:
        """Live worker processes of the server."""

    def booting_count(self) -> int:
        """Worker processes of the server still starting (not counted by worker_count)."""

    def worker_problems(self) -> list[dict[str, Any]]:
        """Workers whose statuses are missing or old: ``pid``, ``reason``, ``unhealthy``."""

    def peer_dumps(self) -> PeerDumps:
        """The other workers' thread dumps (none for a single process)."""

    def peer_tasks(self) -> list[WorkerTasks]:
        """The other workers' asyncio tasks, or why a worker gave none (none for a single
        process)."""

    def window_lock(self, name: str) -> AbstractContextManager[object]:
        """The one-per-server turn of window ``name`` (/profile, /memory), held for the
        block; ``BlockingIOError`` when another worker has it (one process: no other)."""

    def peer_windows(self) -> PeerWindows | None:
        """The other workers' part of a scope=all window (None: this process only)."""

    def peer_histories(self) -> PeerHistories | None:
        """The other workers' flight-recorder histories (None: this process only)."""


def coordination_for(state_dir: str | None) -> Coordination:
    """The single-process coordination without a state directory, else the shared one."""
    if not state_dir:
        from common_api.coordination.local import LocalCoordination

        return LocalCoordination()
    from common_api.coordination.shared import SharedDirectoryCoordination

    return SharedDirectoryCoordination.for_directory(state_dir)
