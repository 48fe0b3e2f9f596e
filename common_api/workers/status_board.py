"""Periodic-thread statuses of every worker, published to ``workers/<pid>.json``.

Each worker rewrites its own file twice a second. A reader takes its own statuses live
and the others' from their files, skipping pids that no longer exist, and re-judges
activity by the wall clock: a thread whose last run is older than 3 intervals is inactive
even if its worker is too stuck to publish, so health sees a stalled worker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from common_api.periodic import PeriodicThread, PeriodicThreadRegistry
from common_api.services.periodic_status import thread_status
from common_api.workers.state_dir import (
    StateDir,
    live_peer_pids,
    read_json,
    write_json_atomically,
)

ACTIVITY_WINDOW = 3.0
PUBLISH_PERIOD = 0.5
# a worker that has missed three publications is taken to be stuck
FRESH_FOR = 3 * PUBLISH_PERIOD

ThreadSource = Callable[[], list[PeriodicThread]]


def _registered_threads() -> list[PeriodicThread]:
    return PeriodicThreadRegistry.get_instance().threads()


def _local_entry(thread: PeriodicThread, pid: int) -> dict[str, Any]:
    status = thread_status(thread)
    status["pid"] = pid
    status["last_run_timestamp"] = thread.last_run_time or None
    return status


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


class StatusBoard:
    def __init__(self, state: StateDir, threads: ThreadSource = _registered_threads) -> None:
        self._state = state
        self._threads = threads

    def local(self) -> list[dict[str, Any]]:
        pid = os.getpid()
        return [_local_entry(thread, pid) for thread in self._threads()]

    def publish(self) -> None:
        pid = os.getpid()
        names = {str(t.ident): t.name for t in threading.enumerate() if t.ident is not None}
        write_json_atomically(self._state.worker_status(pid), {
            "pid": pid, "written_at": time.time(), "threads": self.local(),
            "thread_names": names})

    def withdraw(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._state.worker_status(pid).unlink()

    def peers(self) -> list[int]:
        """Pids of the other live workers that publish here."""
        return live_peer_pids(self._state.workers, "*.json")

    def published(self) -> dict[int, dict[str, Any]]:
        """The files of every other live worker, by pid."""
        boards: dict[int, dict[str, Any]] = {}
        for pid in self.peers():
            data = read_json(self._state.worker_status(pid))
            if isinstance(data, dict) and isinstance(data.get("threads"), list):
                boards[pid] = data
        return boards

    def statuses(self) -> list[dict[str, Any]]:
        """Every live worker's statuses, each entry carrying its ``pid``."""
        now = time.time()
        entries = self.local()
        for data in self.published().values():
            written_at = float(data.get("written_at", 0.0))
            entries.extend(_rejudge(dict(entry), written_at, now) for entry in data["threads"])
        return entries

    def thread_names(self, pid: int) -> dict[str, str]:
        data = read_json(self._state.worker_status(pid))
        names = data.get("thread_names") if isinstance(data, dict) else None
        return dict(names) if isinstance(names, dict) else {}
