"""Periodic-thread statuses of every worker, published to ``workers/<pid>.json``.

Each worker rewrites its own file twice a second. A reader takes its own statuses live
and the others' from their files, for the server's live workers only (``workers.peers``:
the master's children, by pid and start time), and re-judges activity by the wall clock:
a thread whose last run is older than 3 intervals is inactive even if its worker is too
stuck to publish, so health sees a stalled worker.

Health stays truthful when the directory fails. A worker whose file cannot be had is
reported under ``worker_problems`` with the reason, and counts against health only when
that means the worker itself is in trouble: it is stopped (SIGSTOP, a debugger), or it
stopped publishing while this worker can still publish. When this worker cannot publish
either (a full, read-only or deleted directory), the silence is the directory's, not the
workers': their last published judgement stands and each is reported as not publishing,
with the reason, instead of every thread turning stale.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common_api.compat.prometheus import safe_files
from common_api.errors import describe_error
from common_api.periodic import PeriodicThread, PeriodicThreadRegistry, ThreadLevel
from common_api.services.periodic_status import thread_status
from common_api.workers.peers import Worker, server_workers, siblings, start_time
from common_api.workers.state_dir import (
    StateDir,
    read_json,
    set_aside,
    write_json_atomically,
)

log = logging.getLogger(__name__)

ACTIVITY_WINDOW = 3.0
PUBLISH_PERIOD = 0.5
# a worker that has missed three publications is taken to be stuck
FRESH_FOR = 3 * PUBLISH_PERIOD
# a worker this young may not have published its first file yet
BOOT_GRACE = 5.0
#: seconds after a worker starts during which workers the master has not forked yet
#: (gunicorn spaces its forks out) count as booting
START_WINDOW = 30.0
# a live worker its siblings do not list because common_api's post_worker_init never ran in it
UNLISTED = ("gunicorn's post_worker_init does not call common_api.gunicorn.post_worker_init "
            "in this worker, so the others cannot ask it")
_LEVELS = frozenset(level.value for level in ThreadLevel)

ThreadSource = Callable[[], list[PeriodicThread]]
WorkerSource = Callable[[], list[Worker]]


@dataclass(frozen=True)
class WorkerProblem:
    """Why a live worker's statuses are missing or old; ``unhealthy`` when it means the
    worker itself is in trouble (rather than the shared directory)."""

    pid: int
    reason: str
    unhealthy: bool

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "reason": self.reason, "unhealthy": self.unhealthy}


def _registered_threads() -> list[PeriodicThread]:
    return PeriodicThreadRegistry.get_instance().threads()


def _local_entry(thread: PeriodicThread, pid: int) -> dict[str, Any]:
    status = thread_status(thread)
    status["pid"] = pid
    status["last_run_timestamp"] = thread.last_run_time or None
    return status


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_entry(entry: Any) -> None:
    """Raise ValueError unless ``entry`` has the fields readers rely on, rightly typed."""
    if not isinstance(entry, dict):
        raise ValueError("a thread entry is not an object")
    if not isinstance(entry.get("name"), str) or entry.get("level") not in _LEVELS:
        raise ValueError("a thread entry has no valid name or level")
    for key in ("is_running", "is_active"):
        if not isinstance(entry.get(key), bool):
            raise ValueError(f"{key} is not a boolean")
    if not _number(entry.get("interval")) or entry["interval"] < 0:
        raise ValueError("interval is not a number of seconds")
    for key in ("total_runs", "failed_runs"):
        if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool):
            raise ValueError(f"{key} is not an integer")
    for key in ("last_run_timestamp", "last_run_ago"):
        if entry.get(key) is not None and not _number(entry.get(key)):
            raise ValueError(f"{key} is not a number")
    if entry.get("last_run_time") is not None and not isinstance(entry["last_run_time"], str):
        raise ValueError("last_run_time is not a string")
    stack = entry.get("stack", [])
    if not isinstance(stack, list) or not all(isinstance(line, str) for line in stack):
        raise ValueError("stack is not a list of strings")


def parse_board(data: Any) -> dict[str, Any]:
    """A worker's published file, checked; ValueError says what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("threads"), list):
        raise ValueError("expected an object with a 'threads' list")
    if not _number(data.get("written_at")):
        raise ValueError("'written_at' is not a number")
    for entry in data["threads"]:
        _check_entry(entry)
    names = data.get("thread_names", {})
    if not isinstance(names, dict):
        raise ValueError("'thread_names' is not an object")
    return data


def _rejudge(entry: dict[str, Any], written_at: float, now: float) -> dict[str, Any]:
    """Activity of a published entry as of ``now``, whatever its worker is doing.

    While its worker keeps publishing, the worker's own judgement stands (it saw the
    thread live). Once the publications stop, the worker itself may be stuck: then the
    thread is active only if its last run began less than 3 intervals ago.
    """
    last_run = entry.get("last_run_timestamp")
    interval = float(entry["interval"])
    if last_run is not None:
        entry["last_run_ago"] = round(now - last_run, 3)
        deadline = last_run + ACTIVITY_WINDOW * interval
    else:
        deadline = written_at + ACTIVITY_WINDOW * interval
    fresh = now - written_at < FRESH_FOR
    entry["is_active"] = bool(entry["is_active"]) and (fresh or now < deadline)
    return entry


def _age(worker: Worker) -> float:
    """Seconds since ``worker`` started (a large number when /proc cannot say)."""
    try:
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - worker.start_time / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("inf")


def _age_of(pid: int) -> float:
    """Seconds since process ``pid`` started (0 when it is gone: too young to judge)."""
    start = start_time(pid)
    return 0.0 if start is None else _age(Worker(pid, start))


def _misplaced(pid: int, files: dict[str, Any]) -> str:
    """Why ``pid``'s counts in ``files`` are missing from a sum over the directory."""
    reasons = sorted({str(reason) for reason in files.values()})
    return (f"worker {pid} keeps {', '.join(sorted(files))} outside the state directory "
            f"({'; '.join(reasons)})")


def _misplaced_problem(pid: int, files: dict[str, Any]) -> WorkerProblem:
    return WorkerProblem(pid, f"{_misplaced(pid, files)}: its counts are missing from "
                              "/metrics until the files are written back", False)


class StatusBoard:
    def __init__(self, state: StateDir, threads: ThreadSource = _registered_threads,
                 workers: WorkerSource = server_workers,
                 live_children: Callable[[], set[int]] = siblings) -> None:
        self._state = state
        self._threads = threads
        self._workers = workers
        self._live_children = live_children
        # gunicorn's worker count and when this worker learnt it: right after a start the
        # master may not have forked every worker yet (it spaces the forks out)
        self._expected: tuple[int, float] | None = None
        # False when the server's gunicorn config does not call common_api's
        # post_worker_init: a worker then never becomes one its siblings list
        self._workers_register = True
        #: whether this worker catches the worker signal, so its siblings list it (None
        #: until its runtime has tried); published, so they can tell why they do not
        self.listed: bool | None = None
        self.publish_error: str | None = None
        self._last = threading.local()
        # when this worker first found a live worker without a usable file (by pid)
        self._missing_since: dict[int, float] = {}

    def local(self) -> list[dict[str, Any]]:
        pid = os.getpid()
        return [_local_entry(thread, pid) for thread in self._threads()]

    def publish(self) -> bool:
        """Write this worker's file; on failure remember why (logged once per reason)."""
        pid = os.getpid()
        names = {str(t.ident): t.name for t in threading.enumerate() if t.ident is not None}
        try:
            write_json_atomically(self._state.worker_status(pid), {
                "pid": pid, "written_at": time.time(), "threads": self.local(),
                "listed": self.listed,
                "thread_names": names, "metrics_misplaced": safe_files.misplaced(),
                "metric_files": safe_files.placed()})
        except OSError as error:
            reason = error.strerror or describe_error(error)  # not the temporary file's name
            if reason != self.publish_error:
                log.warning("common_api: worker %d cannot publish its status: %s", pid, reason)
            self.publish_error = reason
            return False
        if self.publish_error is not None:
            log.warning("common_api: worker %d publishes its status again", pid)
        self.publish_error = None
        return True

    def withdraw(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            self._state.worker_status(pid).unlink()

    def peers(self) -> list[int]:
        """Pids of the other live workers of this server."""
        return [worker.pid for worker in self._workers()]

    def _read(self, pid: int) -> tuple[dict[str, Any] | None, str | None]:
        """A live worker's file, or None and why it cannot be used."""
        path = self._state.worker_status(pid)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, "publishes no status file"
        except OSError as error:
            return None, f"its status file cannot be read ({describe_error(error)})"
        try:
            return parse_board(json.loads(raw)), None
        except (ValueError, TypeError) as error:
            reason = "empty file" if not raw else describe_error(error)
            set_aside(path, reason)
            return None, f"its status file was unusable ({reason})"

    def _collect(self) -> tuple[list[dict[str, Any]], int, list[WorkerProblem]]:
        now = time.time()
        entries = self.local()
        problems: list[WorkerProblem] = []
        workers = self._workers()
        own_problem = self.publish_error
        for pid in set(self._missing_since) - {worker.pid for worker in workers}:
            self._missing_since.pop(pid, None)
        for worker in workers:
            data, why = self._read(worker.pid)
            if data is not None:
                self._missing_since.pop(worker.pid, None)
            if worker.stopped:
                problems.append(WorkerProblem(worker.pid, "stopped (SIGSTOP or a debugger)",
                                              True))
            if data is None:
                if not worker.stopped:
                    problems.append(self._silent(worker, why or "", own_problem))
                continue
            written_at = float(data["written_at"])
            stale = now - written_at >= FRESH_FOR
            if stale and own_problem is not None and not worker.stopped:
                # nobody can publish: its last judgement stands, reported as not publishing
                problems.append(WorkerProblem(
                    worker.pid, f"cannot publish ({own_problem})", False))
                entries.extend(dict(entry) for entry in data["threads"])
                continue
            entries.extend(_rejudge(dict(entry), written_at, now) for entry in data["threads"])
            misplaced = data.get("metrics_misplaced")
            if isinstance(misplaced, dict) and misplaced:
                problems.append(_misplaced_problem(worker.pid, misplaced))
        own = safe_files.misplaced()
        if own:
            problems.append(_misplaced_problem(os.getpid(), own))
        live = self._live_children()
        booting = 0
        unlisted: dict[int, str] = {}
        for pid in sorted(live - {worker.pid for worker in workers}):
            reason = self._unlisted(pid, entries, now)
            if reason is None:
                booting += 1
            else:
                unlisted[pid] = reason
                problems.append(WorkerProblem(pid, reason, False))
        if self._expected is not None and time.monotonic() - self._expected[1] < START_WINDOW:
            booting += max(0, self._expected[0] - 1 - len(live))  # not forked yet
        count = 1 + len(workers) + len(unlisted)
        self._last.snapshot = (time.monotonic(), count, problems, booting, unlisted)
        return entries, count, problems

    def _unlisted(self, pid: int, entries: list[dict[str, Any]], now: float) -> str | None:
        """Why the live worker ``pid``, which its siblings do not list, is not booting (its
        published threads then go into ``entries``), or None while it may be booting."""
        data, _ = self._read(pid)
        if data is not None and data.get("listed") is False:
            entries.extend(_rejudge(dict(entry), float(data["written_at"]), now)
                           for entry in data["threads"])
            return (f"{UNLISTED} (its runtime started on a request thread): scope=all "
                    "and the live part of /metrics leave it out")
        if not self._workers_register and _age_of(pid) >= BOOT_GRACE:
            return (f"{UNLISTED}: health, /periodic-threads, scope=all and the live part of "
                    "/metrics leave it out")
        return None

    def _silent(self, worker: Worker, why: str, own_problem: str | None
                ) -> WorkerProblem:
        if own_problem is not None:
            return WorkerProblem(worker.pid, f"cannot publish ({own_problem})", False)
        if _age(worker) < BOOT_GRACE:
            return WorkerProblem(worker.pid, f"starting: {why}", False)
        since = self._missing_since.setdefault(worker.pid, time.monotonic())
        if time.monotonic() - since < FRESH_FOR:
            # its file may have been deleted with the directory: it republishes within 0.5 s
            return WorkerProblem(worker.pid, why, False)
        return WorkerProblem(worker.pid, f"{why} although the state directory takes "
                                         "writes: stuck?", True)

    def _recent(self) -> tuple[int, list[WorkerProblem]]:
        snapshot = getattr(self._last, "snapshot", None)
        if snapshot is None or time.monotonic() - snapshot[0] > 1.0:
            _, count, problems = self._collect()
            return count, problems
        return snapshot[1], snapshot[2]

    def expect(self, workers: int, register: bool = True) -> None:
        """The server's configured worker count, told at start: during the first seconds,
        the workers not forked yet count as booting too. ``register`` False: the server's
        config does not call common_api's post_worker_init, so a worker past its boot
        grace that its siblings do not list is named, not counted as booting."""
        self._expected = (workers, time.monotonic())
        self._workers_register = register

    def unlisted(self) -> dict[int, str]:
        """Live workers the others cannot ask (not started by post_worker_init), and why,
        as of this thread's last statuses read."""
        self._recent()
        return dict(self._last.snapshot[4])

    def booting_count(self) -> int:
        """The server's other live worker processes that are not answering yet (still
        loading the app), as of this thread's last statuses read."""
        self._recent()
        snapshot = self._last.snapshot
        return int(snapshot[3])

    def statuses(self) -> list[dict[str, Any]]:
        """Every live worker's statuses, each entry carrying its ``pid``."""
        return self._collect()[0]

    def worker_count(self) -> int:
        """This worker and its live siblings (as of this thread's last statuses read)."""
        return self._recent()[0]

    def problems(self) -> list[WorkerProblem]:
        """Live workers whose statuses are missing or old, and why."""
        return self._recent()[1]

    def misplaced_metrics(self) -> str | None:
        """Why a sum over the shared metric files would miss a live worker's values now
        (its files deleted with the directory, or kept in memory), or None."""
        own = safe_files.misplaced()
        if own:
            return _misplaced(os.getpid(), own)
        for worker in self._workers():
            data = read_json(self._state.worker_status(worker.pid))
            if not isinstance(data, dict):  # a worker publishes as soon as it is a peer
                return f"worker {worker.pid} has not published where its metric files are"
            misplaced = data.get("metrics_misplaced")
            if isinstance(misplaced, dict) and misplaced:
                return _misplaced(worker.pid, misplaced)
            stale = self._stale_metric_file(data.get("metric_files"))
            if stale is not None:
                return f"worker {worker.pid}'s {stale} is not in the state directory as " \
                       "it last published"
        return None

    def _stale_metric_file(self, published: Any) -> str | None:
        """The first published value file whose inode is not at its name now (deleted
        or replaced since the worker wrote its status: what it said no longer holds)."""
        if not isinstance(published, dict):
            return None  # a worker of a version that does not publish them
        for name, inode in published.items():
            try:
                if (self._state.prometheus / str(name)).stat().st_ino != inode:
                    return str(name)
            except OSError:
                return str(name)
        return None

    def thread_names(self, pid: int) -> dict[str, str]:
        data = read_json(self._state.worker_status(pid))
        names = data.get("thread_names") if isinstance(data, dict) else None
        return dict(names) if isinstance(names, dict) else {}
