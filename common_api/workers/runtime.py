"""The per-process side of a multi-worker server, one per state directory.

A runtime starts in each worker: after the fork (when the app was loaded in the master),
from gunicorn's ``post_worker_init`` hook, or on the first request, whichever comes first;
starting twice in one process does nothing. It listens on its peer channel
(``peer_link``), where its siblings ask it for its live metrics, its thread dump, a level
change and its part of a profile or memory window; installs the worker signal and the
faulthandler fallback; applies the shared log levels; and runs one background thread
that re-applies levels when the file changes and publishes this worker's statuses.

The same thread recovers the worker's side from state-directory faults by itself: it
recreates a deleted directory, writes back value files that were detached, deleted or
replaced (``safe_files.reattach``), keeps a last good copy of the shared files so a
garbled one can be restored, and publishes again once the directory takes writes. No
step of it can stop it: each failure is logged once per reason and retried next tick.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from prometheus_client import REGISTRY

from common_api.compat.prometheus import safe_files
from common_api.errors import Unavailable, describe_error
from common_api.periodic import PeriodicThread, ThreadLevel
from common_api.services.live_metrics import (
    Gathered,
    LiveFamily,
    MissingWorkerLog,
    RegistryReader,
)
from common_api.services.tasks import TaskDumpService
from common_api.services.tasks_workers import WorkerTasks, worker_tasks
from common_api.services.threads import PeerDump
from common_api.workers import peers
from common_api.workers.dumps import THREADS, WorkerDumps
from common_api.workers.metrics_files import FileBaselineStore, LockedMultiProcessCollector
from common_api.workers.peer_histories import PeerHistories
from common_api.workers.peer_link import PeerLink
from common_api.workers.peer_profiles import WINDOW, PeerWindows
from common_api.workers.peers import server_workers
from common_api.workers.shared_levels import LEVELS, SharedLogLevels
from common_api.workers.state_dir import StateDir
from common_api.workers.status_board import PUBLISH_PERIOD, StatusBoard

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.25
LIVE_METRICS = "metrics"  # the peer channel's request for a worker's live metrics
TASK_LISTING = "tasks"  # ...and for its asyncio tasks
TASKS_PEER_TIMEOUT = 2.0  # longest wait of /tasks?scope=all for the other workers, seconds
PUBLISH_EVERY = round(PUBLISH_PERIOD / SYNC_INTERVAL)  # ticks


class WorkerRuntime:
    _instances: ClassVar[dict[Path, WorkerRuntime]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.board = StatusBoard(state)
        self.dumps = WorkerDumps()
        self.metrics_source = LockedMultiProcessCollector(state, live_pids)
        self.baseline = FileBaselineStore(state.metrics_baseline)
        self.live_metrics = RegistryReader(REGISTRY, multiprocess=True)
        self.link = PeerLink(state.root)
        self.levels = SharedLogLevels(state, self.link.ask_siblings)
        self.missing_log = MissingWorkerLog(self.link.claim)
        # inline: the quick answer every scrape waits for (a host callback that is slow
        # delays only what this worker is asked meanwhile, within each caller's deadline)
        self.link.handle(LIVE_METRICS, lambda _body: self.live_metrics.report(), inline=True)
        # not inline: reading 1,000 tasks takes milliseconds, off the listening thread
        self.tasks = TaskDumpService()
        self.link.handle(TASK_LISTING, lambda _body: self.tasks.dump().to_dict())
        self.link.handle(THREADS, self.dumps.answer)
        self.peer_windows = PeerWindows(self.link.begin_asking_siblings)
        self.link.handle(WINDOW, self.peer_windows.answer)
        self.link.handle(LEVELS, self.levels.receive)
        self.peer_histories = PeerHistories(self.link)
        self._pid: int | None = None
        self._ticks = 0
        self._failing: dict[str, str] = {}
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
                state = StateDir(key)
                try:
                    state.create()
                except OSError as error:
                    log.warning("common_api: state directory %s cannot be created now (%s); "
                                "retrying in the background", key, describe_error(error))
                runtime = cls._instances[key] = cls(state)
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
            safe_files.install()
            self._step("state directory", self.state.ensure)
            # listening before the dump handler makes this worker one its siblings ask
            self._step("peer channel", self.link.start)
            # published before the dump handler makes this worker a sibling that the
            # others list (peers.server_workers): it is never listed without its status
            self.board.publish()
            installed = self._step("thread dumps", self.dumps.install)
            if installed is _FAILED:
                _catch_worker_signal()
            self.board.listed = signal.getsignal(peers.WORKER_SIGNAL) not in (
                signal.SIG_DFL, signal.SIG_IGN, None)
            self._step("log levels", self.levels.listen)
            self.board.publish()
            self._sync.start()
            self._pid = pid
            log.debug("common_api worker runtime started in %d (%s)", pid, self.state.root)

    def peer_dumps(self) -> list[PeerDump]:
        """Every other live worker's threads, by pid (``workers/dumps.py``)."""
        return self.dumps.collect(server_workers(), self.link.address,
                                  names=self.board.thread_names)

    def gather_live_metrics(self, timeout: float) -> Gathered:
        """This worker's live metrics and every other live worker's, within ``timeout``."""
        return self.begin_live_metrics(timeout)()

    def gather_tasks(self) -> list[WorkerTasks]:
        """Every other live worker's asyncio tasks; a worker that gives none in
        ``TASKS_PEER_TIMEOUT`` is named with the reason."""
        replies = self.link.ask_siblings(TASK_LISTING, None, TASKS_PEER_TIMEOUT)
        return worker_tasks(replies.answers, replies.missing)

    def begin_live_metrics(self, timeout: float) -> Callable[[], Gathered]:
        """``gather_live_metrics`` in two halves: the other workers are asked now, the
        returned function reads this worker's part and collects theirs."""
        try:
            finish = self.link.begin_asking_siblings(LIVE_METRICS, None, timeout)
        except OSError as error:  # out of file descriptors, say: say so, never guess
            raise Unavailable(f"Metrics unavailable: the other workers cannot be asked for "
                              f"their live metrics ({describe_error(error)})") from None

        def gathered() -> Gathered:
            reports = {os.getpid(): self.live_metrics.families()}
            replies = finish()
            missing = {**self.board.unlisted(), **replies.missing}
            for pid, answer in replies.answers.items():
                try:
                    reports[pid] = [LiveFamily.from_json(item) for item in answer["families"]]
                except (TypeError, ValueError, KeyError) as error:
                    missing[pid] = f"answer unreadable ({type(error).__name__})"
            return Gathered(reports, missing)

        return gathered

    def _tick(self) -> None:
        self._ticks += 1
        self._step("log levels", lambda: self.levels.apply_due(time.time()))
        self._step("log levels", self.levels.sync)
        if self._ticks % PUBLISH_EVERY == 0:
            if self._step("state directory", self.state.ensure) is True:
                log.warning("common_api: the state directory %s was missing; recreated",
                            self.state.root)
            self._step("reset baseline", self.baseline.refresh)
            self._step("metric files", safe_files.reattach)
            if not self.link.listening:
                self._step("peer channel", self.link.start)
            self.board.publish()

    def _step(self, what: str, action: Callable[[], object]) -> object:
        """Run one part of the tick; a failure is logged once until it changes."""
        try:
            result = action()
        except Exception as error:
            reason = describe_error(error)
            if self._failing.get(what) != reason:
                log.warning("common_api: worker %d: %s: %s (retrying)", os.getpid(), what,
                            reason)
            self._failing[what] = reason
            return _FAILED
        if self._failing.pop(what, None) is not None:
            log.warning("common_api: worker %d: %s recovered", os.getpid(), what)
        return result

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pid = None
        try:
            self.ensure_started()
        except Exception:
            log.exception("common_api worker runtime could not start after fork")


_FAILED = object()


def _catch_worker_signal() -> None:
    """When the dump side could not be installed (no memfd for faulthandler, say) a worker
    still catches the worker signal, so its siblings count it (``peers``)."""
    try:
        if signal.getsignal(peers.WORKER_SIGNAL) in (signal.SIG_DFL, None):
            signal.signal(peers.WORKER_SIGNAL, lambda signum, frame: None)
    except (ValueError, OSError) as error:  # not the main thread
        log.warning("common_api: worker %d cannot catch the worker signal: %s", os.getpid(),
                    describe_error(error))


def live_pids() -> set[int]:
    """Processes that may be writing metric files: this one, its sibling workers (booting
    ones too) and the master (with --preload, it created files before forking)."""
    return {os.getpid(), os.getppid(), *peers.siblings()}


def prepare_worker() -> None:
    """In a freshly forked worker, before the app is imported: metric files allocate
    safely, and one that cannot be created (read-only, full or deleted directory) is kept
    in memory instead of failing the worker's boot."""
    safe_files.install()


def worker_exited(state: StateDir, pid: int) -> None:
    """In the master, after worker ``pid`` exited: fold its metric files (and any a failed
    fold left) and remove its status file. Never raises: a fault of the state
    directory must not take the master down; what is left is folded next time."""
    from common_api.workers.metrics_files import fold_dead_workers

    for what, action in (("fold", lambda: fold_dead_workers(state, {pid})),
                         ("peer channel socket", lambda: PeerLink.released(state.root, pid)),
                         ("status file", lambda: StatusBoard(state).withdraw(pid))):
        try:
            action()
        except Exception as error:
            log.warning("common_api could not clean up after worker %s (%s): %s", pid, what,
                        describe_error(error))


def _after_fork_in_child() -> None:
    WorkerRuntime._instances_lock = threading.Lock()
    for runtime in list(WorkerRuntime._instances.values()):
        runtime._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
