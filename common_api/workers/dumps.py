"""Stacks of every worker of the server, read so that no worker can be harmed by it.

Normal path, under the GIL: each worker catches ``WORKER_SIGNAL`` with a Python handler
that only puts a token on a queue (reentrant-safe, whatever the main thread was doing),
and its ``common-api-dumper`` thread formats ``sys._current_frames()`` of every thread
with names and idents, like the worker's own ``/threads``, into ``dumps/<pid>.json``
(replaced atomically, so one file per worker, whatever the number of calls). It first
writes a "working" mark, so the collector knows the worker is answering even when a dump
of thousands of threads takes a while.

Fallback, for a worker that does not even mark within ``ANSWER_SECONDS`` (a thread holds
the GIL in a C call, so no Python code of that worker can run): ``FALLBACK_SIGNAL``, on
which faulthandler is registered, writes the stacks from C inside the signal handler to
``dumps/<pid>.txt`` (truncated by the collector first, so it too holds one dump). Only
this path reads frames without the GIL; used on busy workers it crashed them (SIGSEGV),
which is why it is the last resort. A stopped worker (SIGSTOP, a debugger) cannot run any
handler: it is listed as stopped and not signalled (real-time signals would queue up).

Workers are found and signalled through ``workers/peers.py`` (pid and start time, from
the master's children), never from the files here.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from common_api.services.threads import (
    FAULTHANDLER,
    PYTHON,
    STOPPED,
    UNANSWERED,
    Frame,
    PeerDump,
    ThreadDumpService,
    ThreadInfo,
)
from common_api.workers import peers
from common_api.workers.peers import WORKER_SIGNAL, Worker
from common_api.workers.state_dir import (
    StateDir,
    describe_error,
    file_lock,
    write_json_atomically,
)

log = logging.getLogger(__name__)

DUMP_SIGNAL = WORKER_SIGNAL
FALLBACK_SIGNAL = signal.SIGRTMIN + 7
ANSWER_SECONDS = 2.0  # to mark "working": longer means no Python code of the worker runs
FINISH_SECONDS = 20.0  # to finish once marked (thousands of threads take a while)
FALLBACK_SECONDS = 3.0
SETTLE_SECONDS = 0.05
POLL_SECONDS = 0.01
_THREAD_LINE = re.compile(r"^(Current thread|Thread) (0x[0-9a-f]+)(.*)$")
_FRAME_LINE = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')

def _thread_to_json(info: ThreadInfo) -> dict[str, Any]:
    return {**info.to_dict(), "description": info.description}


def _thread_from_json(data: dict[str, Any]) -> ThreadInfo:
    frames = tuple(Frame(str(f["file"]), int(f["line"]), str(f["function"]), str(f["code"]))
                   for f in data["frames"])
    return ThreadInfo(str(data["name"]), int(data["ident"]), data.get("native_id"),
                      data.get("daemon"), str(data["description"]), frames,
                      int(data.get("frames_omitted", 0)))


def _os_thread_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


class WorkerDumps:
    def __init__(self, state: StateDir,
                 capture: Callable[[], list[ThreadInfo]] | None = None) -> None:
        self._state = state
        self._capture = capture or ThreadDumpService().dump
        self._requests: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._fallback_file: IO[bytes] | None = None
        self._dumper: threading.Thread | None = None

    def answer_path(self, pid: int) -> Path:
        return self._state.dumps / f"{pid}.json"

    def fallback_path(self, pid: int) -> Path:
        return self._state.worker_dump(pid)

    # ------------------------------------------------------------------ worker side

    def install(self) -> bool:
        """Make this process answer dump requests; False (and a warning) when it cannot,
        because signal handlers can only be installed from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("common_api: worker runtime of %d started outside the main thread "
                        "(gunicorn without common_api.gunicorn_conf?): other workers' "
                        "/threads?scope=all will not list this worker", os.getpid())
            return False
        self._requests = queue.SimpleQueue()
        if self._dumper is None or not self._dumper.is_alive():
            self._dumper = threading.Thread(target=self._serve, name="common-api-dumper",
                                            daemon=True)
            self._dumper.start()
        signal.signal(DUMP_SIGNAL, self._on_signal)
        # the GIL path above needs no file; the fallback's file may fail (read-only,
        # full, deleted directory) and is made again by ``ensure_fallback`` from the tick
        self._fallback_file = None
        try:
            self.ensure_fallback()
        except OSError as error:
            log.warning("common_api: worker %d has no faulthandler dump file yet (%s); "
                        "retrying in the background", os.getpid(), describe_error(error))
        return True

    def ensure_fallback(self) -> None:
        """(Re)open this worker's faulthandler file when it is missing or was replaced
        (the directory deleted and made again); an OSError while it cannot be made."""
        path = self.fallback_path(os.getpid())
        current = self._fallback_file
        if current is not None:
            try:
                if os.path.samestat(os.fstat(current.fileno()), path.stat()):
                    return
            except FileNotFoundError:
                pass
        self._state.dumps.mkdir(parents=True, exist_ok=True)
        # append mode: after the collector truncates the file, C writes land at offset 0
        opened = path.open("ab")
        faulthandler.register(FALLBACK_SIGNAL, file=opened, all_threads=True, chain=False)
        self._fallback_file = opened
        if current is not None:
            current.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._requests.put(None)  # SimpleQueue.put is safe in a signal handler

    def _serve(self) -> None:
        requests = self._requests
        while True:
            requests.get()
            while not requests.empty():  # requests that arrived meanwhile share this dump
                requests.get_nowait()
            try:
                self._answer()
            except Exception:
                log.exception("common_api: could not write this worker's thread dump")

    def _write(self, payload: dict[str, Any]) -> None:
        path = self.answer_path(os.getpid())
        try:
            write_json_atomically(path, payload)
        except FileNotFoundError:  # the directory was removed: make it again
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(path, payload)

    def _answer(self) -> None:
        pid = os.getpid()
        started = time.monotonic()
        self._write({"pid": pid, "requested_by": started, "state": "working"})
        threads = self._capture()
        self._write({"pid": pid, "requested_by": started, "state": "done",
                     "threads": [_thread_to_json(info) for info in threads]})

    def withdraw(self, pid: int) -> None:
        for path in (self.answer_path(pid), self.fallback_path(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ------------------------------------------------------------------ collector side

    def collect(self, workers: list[Worker],
                names: Callable[[int], dict[str, str]] = lambda pid: {}) -> list[PeerDump]:
        """Every listed worker's threads, by pid; ``names`` gives a worker's published
        thread names by ident (used to label a faulthandler dump)."""
        asked_at = time.monotonic()
        results: dict[int, PeerDump] = {}
        waiting: dict[int, Worker] = {}
        for worker in workers:
            now = peers.current(worker)
            if now is None:
                continue  # exited since it was listed
            if now.stopped:
                results[worker.pid] = PeerDump(
                    worker.pid, STOPPED, total=_os_thread_count(worker.pid),
                    note="stopped (SIGSTOP or a debugger): no stacks until it runs again")
            elif peers.send_signal(worker, DUMP_SIGNAL):
                waiting[worker.pid] = worker
        unanswered = self._await_answers(waiting, asked_at, results)
        if unanswered:
            self._fallback(unanswered, names, results)
        return [results[pid] for pid in sorted(results)]

    def _await_answers(self, waiting: dict[int, Worker], asked_at: float,
                       results: dict[int, PeerDump]) -> list[Worker]:
        answer_by = asked_at + ANSWER_SECONDS
        finish_by = asked_at + FINISH_SECONDS
        marked: set[int] = set()
        while waiting:
            for pid in list(waiting):
                payload = self._read_answer(pid, asked_at)
                if payload is None:
                    continue
                if payload.get("state") == "done":
                    threads = tuple(_thread_from_json(t) for t in payload["threads"])
                    results[pid] = PeerDump(pid, PYTHON, threads, total=len(threads))
                    del waiting[pid]
                else:
                    marked.add(pid)
            now = time.monotonic()
            if now > finish_by:
                break
            if now > answer_by and not set(waiting) <= marked:
                break
            time.sleep(POLL_SECONDS)
        late = [worker for pid, worker in waiting.items() if pid not in marked]
        for pid in waiting:
            if pid in marked:
                results[pid] = PeerDump(pid, UNANSWERED, total=_os_thread_count(pid),
                                        note="answering, but not finished within "
                                             f"{FINISH_SECONDS:g} s")
        return late

    def _read_answer(self, pid: int, asked_at: float) -> dict[str, Any] | None:
        try:
            with self.answer_path(pid).open() as handle:
                payload = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict):
            return None
        requested_by = payload.get("requested_by")
        if not isinstance(requested_by, (int, float)) or requested_by < asked_at:
            return None  # an answer to an earlier call
        if payload.get("state") == "done" and not isinstance(payload.get("threads"), list):
            return None
        return payload

    def _fallback(self, workers: list[Worker], names: Callable[[int], dict[str, str]],
                  results: dict[int, PeerDump]) -> None:
        # A faulty dumps directory (read-only, full, deleted) leaves these workers
        # unanswered with the reason; it never fails the whole dump.
        reasons: dict[int, str] = {}
        fault = _directory_fault(self._state.dumps)
        if fault is not None:  # faulthandler could not write either: do not wait for it
            reasons = {worker.pid: fault for worker in workers}
        try:
            self._state.dumps.mkdir(parents=True, exist_ok=True)
            with file_lock(self._state.dumps_lock, exclusive=True):
                sent = []
                for worker in workers if fault is None else []:
                    path = self.fallback_path(worker.pid)
                    try:
                        os.truncate(path, 0)
                    except FileNotFoundError:
                        continue
                    except OSError as error:
                        reasons[worker.pid] = describe_error(error)
                        continue
                    if peers.send_signal(worker, FALLBACK_SIGNAL):
                        sent.append(worker.pid)
                for pid in sent:
                    text = self._read_when_settled(self.fallback_path(pid), FALLBACK_SECONDS)
                    results[pid] = self._fallback_dump(pid, text, names(pid))
        except OSError as error:
            reason = describe_error(error)
            reasons.update((worker.pid, reason) for worker in workers)
        for worker in workers:
            note = f"no answer within {ANSWER_SECONDS + FALLBACK_SECONDS:g} s"
            if worker.pid in reasons:
                note = (f"no answer within {ANSWER_SECONDS:g} s: the dumps directory "
                        f"cannot be written ({reasons[worker.pid]})")
            results.setdefault(worker.pid, PeerDump(
                worker.pid, UNANSWERED, total=_os_thread_count(worker.pid), note=note))

    @staticmethod
    def _fallback_dump(pid: int, text: str | None, names: dict[str, str]) -> PeerDump:
        if text is None:
            return PeerDump(pid, UNANSWERED, total=_os_thread_count(pid),
                            note=f"no answer within {ANSWER_SECONDS + FALLBACK_SECONDS:g} s")
        labelled = label_threads(text, names)
        threads = tuple(parse_dump(text, names, pid))
        total: int | None = len(threads)
        note = "did not answer under the GIL; dumped by faulthandler from C"
        if "..." in text.splitlines() or total == 0:  # faulthandler stops at 100 threads
            total = _os_thread_count(pid)
            note += f"; faulthandler shows {len(threads)} of {total} threads"
        return PeerDump(pid, FAULTHANDLER, threads, total=total, text=labelled, note=note)

    @staticmethod
    def _read_when_settled(path: Path, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        last_size, stable_since = -1, 0.0
        while time.monotonic() < deadline:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return None
            now = time.monotonic()
            if size != last_size:
                last_size, stable_since = size, now
            elif size > 0 and now - stable_since >= SETTLE_SECONDS:
                with path.open("rb") as handle:
                    return handle.read(size).decode("utf-8", "replace")
            time.sleep(POLL_SECONDS)
        return None


def _directory_fault(directory: Path) -> str | None:
    """Why nothing can be written in ``directory`` now (read-only or full), or None."""
    try:
        stats = os.statvfs(directory if directory.exists() else directory.parent)
    except OSError as error:
        return describe_error(error)
    if stats.f_flag & os.ST_RDONLY:
        return "Read-only file system"
    if stats.f_bavail == 0:
        return "No space left on device"
    return None


def label_threads(dump: str, names: dict[str, str]) -> str:
    """Add thread names (by ident) to faulthandler's ``Thread 0x...`` lines."""
    lines = []
    for line in dump.splitlines():
        match = _THREAD_LINE.match(line)
        if match:
            name = names.get(str(int(match.group(2), 16)))
            if name:
                line = f"{match.group(1)} {match.group(2)} [{name}]{match.group(3)}"
        lines.append(line)
    return "\n".join(lines)


def parse_dump(dump: str, names: dict[str, str], pid: int) -> list[ThreadInfo]:
    """faulthandler's text as ThreadInfo records (frames outermost first)."""
    threads: list[ThreadInfo] = []
    ident: int | None = None
    frames: list[Frame] = []

    def close() -> None:
        if ident is not None:
            name = names.get(str(ident), hex(ident))
            threads.append(ThreadInfo(name, ident, None, None, f"{name} (worker {pid})",
                                      tuple(reversed(frames))))

    for line in dump.splitlines():
        thread = _THREAD_LINE.match(line)
        if thread:
            close()
            ident, frames = int(thread.group(2), 16), []
            continue
        frame = _FRAME_LINE.match(line)
        if frame and ident is not None:
            frames.append(Frame(frame.group(1), int(frame.group(2)), frame.group(3), ""))
    close()
    return threads
