"""Stacks of every worker of the server, read so that no worker can be harmed by it.

Normal path, under the GIL: the asker sends a ``threads`` request to every other live
worker over the peer channel (``peer_channel``, one deadline for all); each worker's
channel thread formats ``sys._current_frames()`` of every thread with names and idents,
like the worker's own ``/threads``, and answers on the socket. Nothing touches the disk,
so a full, read-only or deleted state directory changes nothing here.

Fallback, for a worker that does not answer within ``ANSWER_SECONDS`` (a thread holds the
GIL in a C call, so no Python code of that worker can run): ``FALLBACK_SIGNAL``, on which
faulthandler is registered, writes the stacks from C inside the signal handler into the
worker's anonymous memory file (``memfd``, in no file system), which the asker truncates
first and reads through ``/proc/<pid>/fd``. Only this path reads frames without the GIL;
used on busy workers it crashed them (SIGSEGV), which is why it is the last resort. A
stopped worker (SIGSTOP, a debugger) cannot run any handler: it is listed as stopped and
not signalled (real-time signals would queue up).

Workers are found and signalled through ``workers/peers.py`` (pid and start time, from
the master's children). Each still catches ``WORKER_SIGNAL`` (doing nothing): that is how
its siblings know it is a worker.
"""

from __future__ import annotations

import faulthandler
import fcntl
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from common_api import startup_log
from common_api.file_locks import file_lock
from common_api.peer_channel import ChannelAddress, FanOut
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

log = logging.getLogger(__name__)

THREADS = "threads"  # the peer channel's request for a worker's thread dump
FALLBACK_SIGNAL = signal.SIGRTMIN + 7
FALLBACK_FILE = "common-api-fallback-dump"  # the memfd's name, seen in /proc/<pid>/fd
ANSWER_SECONDS = 2.0  # to answer: longer means no Python code of the worker runs
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


def _fallback_fd(pid: int) -> int | None:
    """The fd number of worker ``pid``'s faulthandler memory file, if it has one."""
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith(f"/memfd:{FALLBACK_FILE}"):
                return int(name)
    except OSError:
        return None
    return None


class _FaultFileUnopened(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class WorkerDumps:
    def __init__(self, capture: Callable[[], list[ThreadInfo]] | None = None) -> None:
        self._capture = capture or ThreadDumpService().dump
        self._fallback: tuple[int, int] | None = None  # (pid, memfd)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ worker side

    def answer(self, _body: object) -> dict[str, Any]:
        """The peer channel's ``threads`` request: this worker's whole dump."""
        with self._lock:  # concurrent askers: one capture at a time
            return {"threads": [_thread_to_json(info) for info in self._capture()]}

    def install(self) -> bool:
        """Make this process a worker its siblings list (it catches ``WORKER_SIGNAL``) and
        dumpable from C; False (and a warning) outside the main thread, where signal
        handlers cannot be installed."""
        if threading.current_thread() is not threading.main_thread():
            startup_log.warn(
                log, "common_api: worker %d: common_api's runtime started on a request "
                "thread, so gunicorn's post_worker_init did not call "
                "common_api.gunicorn.post_worker_init in it: the other workers cannot ask "
                "it (scope=all and the live part of /metrics leave it out; health names "
                "it)", os.getpid())
            return False
        signal.signal(WORKER_SIGNAL, _ignore)
        pid = os.getpid()
        if self._fallback is None or self._fallback[0] != pid:
            fd = os.memfd_create(FALLBACK_FILE)  # close-on-exec, in no file system
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            # append: after the asker truncates it, C writes land at offset 0
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)
            faulthandler.register(FALLBACK_SIGNAL, file=fd, all_threads=True, chain=False)
            old, self._fallback = self._fallback, (pid, fd)
            if old is not None and old[0] == pid:
                os.close(old[1])
        return True

    # ------------------------------------------------------------------ collector side

    def collect(self, workers: list[Worker], address: Callable[[int], ChannelAddress],
                names: Callable[[int], dict[str, str]] = lambda pid: {}) -> list[PeerDump]:
        """Every listed worker's threads, by pid; ``address`` gives a worker's channel,
        ``names`` its published thread names by ident (to label a faulthandler dump)."""
        results: dict[int, PeerDump] = {}
        asked: dict[int, Worker] = {}
        for worker in workers:
            now = peers.current(worker)
            if now is None:
                continue  # exited since it was listed
            if now.stopped:
                results[worker.pid] = PeerDump(
                    worker.pid, STOPPED, total=_os_thread_count(worker.pid),
                    note="stopped (SIGSTOP or a debugger): no stacks until it runs again")
            else:
                asked[worker.pid] = worker
        replies = FanOut({pid: address(pid) for pid in asked}, THREADS, None,
                         ANSWER_SECONDS).wait()
        late: list[Worker] = []
        for pid, worker in asked.items():
            if pid in replies.answers:
                try:
                    threads = tuple(_thread_from_json(t)
                                    for t in replies.answers[pid]["threads"])
                except (TypeError, ValueError, KeyError) as error:
                    results[pid] = _unanswered(pid, f"answer unreadable "
                                                    f"({type(error).__name__})")
                    continue
                results[pid] = PeerDump(pid, PYTHON, threads, total=len(threads))
                continue
            cause = replies.missing.get(pid, "no answer")
            if peers.current(worker) is None:
                continue  # exited meanwhile
            if cause.startswith(("no answer", "did not take")):
                late.append(worker)  # Python cannot run there: only C can dump it
            else:
                results[pid] = _unanswered(pid, cause)
        for worker in late:
            results[worker.pid] = self._fallback_dump(worker, names(worker.pid))
        return [results[pid] for pid in sorted(results)]

    def _fallback_dump(self, worker: Worker, names: dict[str, str]) -> PeerDump:
        pid = worker.pid
        unanswered = _unanswered(pid, f"no answer within "
                                      f"{ANSWER_SECONDS + FALLBACK_SECONDS:g} s")
        number = _fallback_fd(pid)
        if number is None:
            return _unanswered(pid, f"no answer within {ANSWER_SECONDS:g} s, and no "
                                    "faulthandler file to dump it from C")
        try:
            # one collector at a time per worker
            with file_lock(f"/proc/{pid}/fd/{number}", on_open_error=_FaultFileUnopened) as fd:
                os.ftruncate(fd, 0)
                if not peers.send_signal(worker, FALLBACK_SIGNAL):
                    return unanswered
                text = _read_when_settled(fd, FALLBACK_SECONDS)
        except _FaultFileUnopened as unopened:
            return _unanswered(pid, f"no answer within {ANSWER_SECONDS:g} s; its "
                                    f"faulthandler file cannot be opened "
                                    f"({unopened.error.strerror})")
        if text is None:
            return unanswered
        labelled = label_threads(text, names)
        threads = tuple(parse_dump(text, names, pid))
        total: int | None = len(threads)
        note = "did not answer under the GIL; dumped by faulthandler from C"
        if "..." in text.splitlines() or total == 0:  # faulthandler stops at 100 threads
            total = _os_thread_count(pid)
            note += f"; faulthandler shows {len(threads)} of {total} threads"
        return PeerDump(pid, FAULTHANDLER, threads, total=total, text=labelled, note=note)


def _unanswered(pid: int, note: str) -> PeerDump:
    return PeerDump(pid, UNANSWERED, total=_os_thread_count(pid), note=note)


def _ignore(signum: int, frame: object) -> None:
    """The worker signal's handler: catching it is what marks a worker."""


def _read_when_settled(fd: int, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    last_size, stable_since = -1, 0.0
    while time.monotonic() < deadline:
        size = os.fstat(fd).st_size
        now = time.monotonic()
        if size != last_size:
            last_size, stable_since = size, now
        elif size > 0 and now - stable_since >= SETTLE_SECONDS:
            return os.pread(fd, size, 0).decode("utf-8", "replace")
        time.sleep(POLL_SECONDS)
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
