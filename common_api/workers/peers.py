"""Which processes are this server's live workers, proven from the process table.

A pid read from a file proves nothing: the process may be gone and the pid reused by an
unrelated one. A sibling worker is found instead from ``/proc``: a child of this
worker's own parent (the gunicorn master), with the same command line (workers are forks
of one master, so they share it, or gunicorn's one process title for workers), that
catches ``WORKER_SIGNAL``, the signal every common_api worker installs a handler for when
its runtime starts (the thread-dump request, ``workers/dumps.py``). Catching it is what
makes signalling the process safe; a process that does not catch it (a new master after
a re-exec, a booting worker, a stranger) would be killed by it, so it is never listed.

A worker is identified by its pid AND its start time (field 22 of ``/proc/<pid>/stat``,
clock ticks since boot), so a pid reused later never matches, and ``send_signal``
signals through a pidfd checked against that start time, so the signal cannot reach a
process that took the pid in between.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

WORKER_SIGNAL = signal.SIGRTMIN + 6
_PROC = Path("/proc")


@dataclass(frozen=True)
class Worker:
    """One worker process. Equal when pid and start time are (state is a snapshot)."""

    pid: int
    start_time: int
    state: str = field(default="R", compare=False)

    @property
    def stopped(self) -> bool:
        """True when the process was stopped (SIGSTOP, a debugger) when it was listed."""
        return self.state in {"T", "t"}


@dataclass(frozen=True)
class _Stat:
    state: str
    ppid: int
    start_time: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces or parentheses itself
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return _Stat(fields[0].decode(), int(fields[1]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def _catches(pid: int, signum: int) -> bool:
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _cmdline(pid: int) -> bytes | None:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None


def _children(ppid: int) -> set[int]:
    pids: set[int] = set()
    try:
        tasks = list((_PROC / str(ppid) / "task").iterdir())
    except OSError:
        tasks = []
    found = False
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (task / "children").read_text().split())
            found = True
    if found or not tasks:
        return pids
    # kernels without /proc/<pid>/task/<tid>/children: scan the whole table
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat.ppid == ppid:
                pids.add(int(entry.name))
    return pids


def _as_worker(pid: int, stat: _Stat | None) -> Worker | None:
    if stat is None or stat.state in {"Z", "X", "x"}:
        return None
    return Worker(pid, stat.start_time, stat.state)


def this_worker() -> Worker:
    """This process, as its siblings see it."""
    pid = os.getpid()
    worker = _as_worker(pid, _stat(pid))
    if worker is None:  # pragma: no cover - /proc always shows the caller
        raise RuntimeError("/proc does not show this process")
    return worker


def _live_siblings() -> list[Worker]:
    """Every other live child of this process's parent, by pid (zombies left out)."""
    own, parent = os.getpid(), os.getppid()
    found = []
    for pid in sorted(_children(parent) - {own}):
        stat = _stat(pid)
        worker = _as_worker(pid, stat) if stat is not None and stat.ppid == parent else None
        if worker is not None:
            found.append(worker)
    return found


def server_workers() -> list[Worker]:
    """The other live workers of this server (this process excluded), by pid.

    Stopped workers are listed (``Worker.stopped``); zombies and processes that do not
    catch ``WORKER_SIGNAL`` are not. Without a master (a single process whose parent is
    a shell) this is usually empty.
    """
    command = _cmdline(os.getpid())
    return [worker for worker in _live_siblings()
            if _catches(worker.pid, WORKER_SIGNAL) and _cmdline(worker.pid) == command]


def siblings() -> set[int]:
    """Every other live child of this process's parent: with a master, its workers,
    including one still booting (which ``server_workers`` does not list until it catches
    the worker signal), so whatever files it is creating are a live process's."""
    return {worker.pid for worker in _live_siblings()}


def is_sibling(pid: int) -> bool:
    """True when ``pid`` is another live child of this process's parent running the same
    command: one of this server's workers (booting ones included), not the master, not a
    process any of them started."""
    if pid == os.getpid():
        return False
    stat = _stat(pid)
    return (stat is not None and stat.ppid == os.getppid() and stat.state not in {"Z", "X", "x"}
            and _cmdline(pid) == _cmdline(os.getpid()))


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None if it is gone."""
    stat = _stat(pid)
    return None if stat is None else stat.start_time


def is_stopped(pid: int) -> bool:
    """True when process ``pid`` is stopped (SIGSTOP, a debugger) now."""
    stat = _stat(pid)
    return stat is not None and stat.state in {"T", "t"}


def current(worker: Worker) -> Worker | None:
    """The same process now (fresh ``state``), or None if it has exited."""
    stat = _stat(worker.pid)
    if stat is None or stat.start_time != worker.start_time:
        return None
    return _as_worker(worker.pid, stat)


def is_running(worker: Worker) -> bool:
    """True while this very process (pid and start time) exists and is not a zombie."""
    return current(worker) is not None


def send_signal(worker: Worker, signum: int) -> bool:
    """Send ``signum`` to this very process; False (nothing sent) if it has exited."""
    try:
        pidfd = os.pidfd_open(worker.pid)
    except ProcessLookupError:
        return False
    except OSError:  # pidfds unsupported: check, then signal (a tiny window remains)
        if not is_running(worker):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)
            return True
        return False
    try:
        # the pidfd pins the process: if the start time matches now, it is the worker
        if not is_running(worker):
            return False
        try:
            signal.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)
