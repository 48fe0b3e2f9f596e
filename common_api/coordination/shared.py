"""Every worker of a gunicorn server, through the server's state directory.

A thin face over ``WorkerRuntime``: the fault handling itself lives in
``common_api.workers`` (state_dir, metrics_files, status_board) and the safe metric files
(``common_api.compat.prometheus.safe_files``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client.registry import Collector, CollectorRegistry

from common_api.errors import ConfigurationError, Unavailable
from common_api.services.live_metrics import LiveMetricsCollector
from common_api.services.loglevels import LevelPublisher
from common_api.services.metrics import Baseline, BaselineStore
from common_api.services.periodic_status import Status
from common_api.services.profiler import PeerHistories, PeerWindows
from common_api.services.tasks_workers import WorkerTasks
from common_api.services.threads import PeerDump
from common_api.workers.metrics_files import FileBaselineStore
from common_api.workers.runtime import WorkerRuntime
from common_api.workers.state_dir import PROMETHEUS_ENV, StateDir

PeerDumps = list[PeerDump]


class CompleteBaselineStore:
    """The shared reset baseline, saved only when it sums every live worker's values: a
    reset taken while a worker's files are missing (the directory deleted and not yet
    repaired, or kept in memory) would answer ok and leave that worker's counts.

    The values are read between two checks that every live worker's files are in the
    directory, and every file there at the first must be there, the same file (inode), at
    the second: one written back or removed while the values were read means the read
    may have missed it. A file that appears meanwhile (a worker booting, a first value of
    a new kind) is allowed: it had nothing to miss when the read began."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def load(self) -> Baseline | None:
        return self.runtime.baseline.load()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        before = self._placement()
        yield
        after = self._placement()
        if any(after.get(name) != inode for name, inode in before.items()):
            raise Unavailable("Reset failed: metric files changed while the reset read "
                              "them (a worker's written back after a fault, or an exited "
                              "worker's folded into the archive); retry in a second")

    def _placement(self) -> dict[str, int]:
        why = self.runtime.board.misplaced_metrics()
        if why is not None:
            raise Unavailable(f"Reset failed: {why}, so a reset would miss its counts; "
                              "retry in a second")
        found: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for path in self.runtime.state.prometheus.glob("*.db"):
                try:
                    found[path.name] = path.stat().st_ino
                except OSError:
                    found[path.name] = -1
        return found

    def save(self, baseline: Baseline) -> None:
        self.runtime.baseline.save(baseline)


class SharedDirectoryCoordination:
    shared = True

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def expect_workers(self, count: int, register: bool = True) -> None:
        self.runtime.board.expect(count, register)

    @classmethod
    def for_directory(cls, state_dir: str) -> SharedDirectoryCoordination:
        """The coordination of ``state_dir``, after checking metrics really are shared."""
        from prometheus_client import values

        expected = StateDir(state_dir).prometheus.resolve()
        configured = os.environ.get(PROMETHEUS_ENV)
        if not getattr(values.ValueClass, "_multiprocess", False) or configured is None or \
                os.path.realpath(configured) != str(expected):
            raise ConfigurationError(
                f"common_api configuration error: COMMON_API_STATE_DIR is {state_dir!r}, so "
                f"{PROMETHEUS_ENV} must be {str(expected)!r} before prometheus_client is "
                "first imported. Serve with 'common-api serve' or 'gunicorn -c "
                "python:common_api.gunicorn_conf', which set both.")
        runtime = WorkerRuntime.for_directory(state_dir)
        # threads the app starts at import then log at the server's levels from their first run
        runtime.levels.sync()
        return cls(runtime)

    def ensure_started(self) -> None:
        self.runtime.ensure_started()

    def level_publisher(self) -> LevelPublisher | None:
        return self.runtime.levels

    def baseline_store(self, ordinal: int = 0) -> BaselineStore:
        if ordinal:  # a second app of the process: its own series, its own baseline
            return FileBaselineStore(
                self.runtime.state.root / f"metrics-baseline-app{ordinal}.json")
        return CompleteBaselineStore(self.runtime)

    def metric_sources(self, registry: CollectorRegistry, peer_timeout: float = 1.0
                       ) -> list[Collector]:
        # every file-backed metric object's values are in the shared files, whatever its
        # registry; the rest of the default registry is read live in every worker
        runtime = self.runtime
        return [LiveMetricsCollector(runtime.metrics_source,
                                     lambda: runtime.begin_live_metrics(peer_timeout),
                                     runtime.missing_log)]

    def statuses(self) -> list[Status]:
        return self.runtime.board.statuses()

    def start(self) -> None:
        self.runtime.ensure_started()

    def worker_count(self) -> int:
        return self.runtime.board.worker_count()

    def booting_count(self) -> int:
        return self.runtime.board.booting_count()

    def worker_problems(self) -> list[dict[str, Any]]:
        return [problem.to_dict() for problem in self.runtime.board.problems()]

    def peer_dumps(self) -> PeerDumps:
        return self.runtime.peer_dumps()

    def peer_tasks(self) -> list[WorkerTasks]:
        return self.runtime.gather_tasks()

    def window_lock(self, name: str) -> AbstractContextManager[object]:
        return self.runtime.link.hold(name)

    def peer_windows(self) -> PeerWindows | None:
        return self.runtime.peer_windows

    def peer_histories(self) -> PeerHistories | None:
        return self.runtime.peer_histories
