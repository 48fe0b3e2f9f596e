"""The per-process side of a multi-worker server, one per state directory.

A runtime starts in each worker: after the fork (when the app was loaded in the master),
from gunicorn's ``post_worker_init`` hook, or on the first request, whichever comes first;
starting twice in one process does nothing. It installs the dump signal, applies the
shared log levels, and runs one background thread that re-applies levels when they
change and publishes this worker's periodic-thread statuses.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import ClassVar

from common_api.periodic import PeriodicThread, ThreadLevel
from common_api.services.threads import PeerDump
from common_api.workers.dumps import WorkerDumps
from common_api.workers.metrics_files import FileBaselineStore, LockedMultiProcessCollector
from common_api.workers.peer_profiles import PeerWindows
from common_api.workers.peers import server_workers
from common_api.workers.shared_levels import SharedLogLevels
from common_api.workers.state_dir import StateDir
from common_api.workers.status_board import PUBLISH_PERIOD, StatusBoard

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.25
PUBLISH_EVERY = round(PUBLISH_PERIOD / SYNC_INTERVAL)  # ticks


class WorkerRuntime:
    _instances: ClassVar[dict[Path, WorkerRuntime]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.levels = SharedLogLevels(state)
        self.board = StatusBoard(state)
        self.dumps = WorkerDumps(state)
        self.metrics_source = LockedMultiProcessCollector(state)
        self.baseline = FileBaselineStore(state.metrics_baseline)
        self.peer_windows = PeerWindows(state, lambda: [w.pid for w in server_workers()])
        self._pid: int | None = None
        self._ticks = 0
        self._lock = threading.Lock()
        self._sync = PeriodicThread("common-api-state-sync", SYNC_INTERVAL, self._tick,
                                    level=ThreadLevel.LOW)

    @classmethod
    def for_directory(cls, root: str | os.PathLike[str]) -> WorkerRuntime:
        """The process-wide runtime of the server whose state lives in ``root``."""
        key = Path(root).resolve()
        with cls._instances_lock:
            runtime = cls._instances.get(key)
            if runtime is None:
                runtime = cls._instances[key] = cls(StateDir(key).create())
            return runtime

    @classmethod
    def start_all(cls) -> None:
        for runtime in list(cls._instances.values()):
            runtime.ensure_started()

    def ensure_started(self) -> None:
        """Start this process's side (idempotent per process; cheap to call per request)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self.state.create()
            self.dumps.install()
            self.levels.listen()
            self.board.publish()
            self.peer_windows.listen()
            self._sync.start()
            self._pid = pid
            log.debug("common_api worker runtime started in %d (%s)", pid, self.state.root)

    def peer_dumps(self) -> list[PeerDump]:
        """Every other live worker's threads, by pid (``workers/dumps.py``)."""
        return self.dumps.collect(server_workers(), names=self.board.thread_names)

    def _tick(self) -> None:
        self.peer_windows.poll()
        self.levels.apply_due(time.time())
        self.levels.sync()
        self._ticks += 1
        if self._ticks % PUBLISH_EVERY == 0:
            self.board.publish()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pid = None
        try:
            self.ensure_started()
        except Exception:
            log.exception("common_api worker runtime could not start after fork")


def _after_fork_in_child() -> None:
    WorkerRuntime._instances_lock = threading.Lock()
    for runtime in list(WorkerRuntime._instances.values()):
        runtime._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
