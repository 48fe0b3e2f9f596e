"""Read-your-writes for the shared log levels: wake every worker, wait for its word.

Each worker that takes part has, in ``level-sync/`` of the state directory:

- ``<pid>.wake``: a FIFO its own listener thread blocks on. Any worker wakes it by writing
  one byte (non-blocking: a full FIFO already holds a wake-up). Nothing is signalled, so a
  stale pid can never reach another process, no handler runs inside the host's threads,
  and a stopped worker finds its wake-up waiting when it runs again.
- ``<pid>.ack``: ``{"pid", "started", "generation"}``: the levels file generation it has
  applied, and its process start time (``workers/peers.py``), written after every apply.
  The start time proves the writer is the live process with that pid, so an ack left
  behind by a dead worker (or one whose pid was reused) is never waited for.

A setter writes the levels file, wakes every other registered live worker, and polls their
acks until each has applied that generation or later, or the deadline passes; the pids
still missing, and the workers found stopped, are what it reports. The listener also
wakes at the time of the earliest pending revert, so every worker carries out a timed
level's revert at its time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common_api.workers import peers
from common_api.workers.state_dir import write_json_atomically

log = logging.getLogger(__name__)

DIRECTORY = "level-sync"
ACK_TIMEOUT = 1.0
# why a worker is named as not having applied a level yet (no digits: pids are the numbers)
STOPPED = "stopped by SIGSTOP or a debugger"
FILES_GONE = "its wake-up and acknowledgement files are gone, the state directory emptied?"
NO_ACK = "no acknowledgement in time, busy or stuck?"
RETRY_AFTER_ERROR = 0.25
CHECK_EVERY = 1.0  # the listener checks its FIFO and ack are still in place
_FIRST_POLL = 0.0005
_LAST_POLL = 0.002


@dataclass(frozen=True)
class Ack:
    pid: int
    started: int
    generation: int

    @property
    def worker(self) -> peers.Worker:
        return peers.Worker(self.pid, self.started)


def _read_ack(path: Path) -> Ack | None:
    try:
        data = json.loads(path.read_bytes())
        return Ack(int(data["pid"]), int(data["started"]), int(data["generation"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


class LevelSync:
    """This process's wake-up FIFO and acks, and the setter's wait for everyone else's."""

    def __init__(self, root: Path, ack_timeout: float = ACK_TIMEOUT) -> None:
        self.directory = root / DIRECTORY
        self.ack_timeout = ack_timeout
        self._pid: int | None = None
        self._started: int | None = None
        self._fd: int | None = None
        self._fifo_inode = 0
        self._acked: int | None = None
        self._found_missing = False
        self._warned: set[str] = set()

    def _wake_path(self, pid: int) -> Path:
        return self.directory / f"{pid}.wake"

    def _ack_path(self, pid: int) -> Path:
        return self.directory / f"{pid}.ack"

    # ----------------------------------------------------------------- the worker's side

    @property
    def listening(self) -> bool:
        return self._pid == os.getpid()

    def listen(self, on_wake: Callable[[], None], next_due: Callable[[], float | None]
               ) -> None:
        """Create this process's FIFO and start its listener thread, which calls
        ``on_wake`` whenever woken and at each time ``next_due`` returns (Unix time)."""
        if self._fd is not None:  # inherited from the parent: its FIFO, not ours
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        # acks go out even if the FIFO cannot be made: setters then wait for this worker's
        # background tick instead of a wake-up
        self._started = peers.this_worker().start_time
        self._acked = None
        self._pid = os.getpid()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = self._open_fifo()
        threading.Thread(target=self._listen, args=(self._pid, on_wake, next_due),
                         name="common-api-level-sync", daemon=True).start()

    def _open_fifo(self) -> int:
        path = self._wake_path(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.mkfifo(path, 0o600)
        # read-write: the open never blocks and the listener never sees end-of-file
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._fifo_inode = os.fstat(fd).st_ino
        return fd

    def _listen(self, pid: int, on_wake: Callable[[], None],
                next_due: Callable[[], float | None]) -> None:
        handled: float | None = None  # a due time already acted on (it may stay pending)
        while self._pid == pid and self._fd is not None:
            try:
                due = next_due()
                timeout = CHECK_EVERY if due is None else \
                    min(CHECK_EVERY, max(0.0, due - time.time()))
                if due is not None and due == handled:
                    timeout = max(timeout, RETRY_AFTER_ERROR)
                readable, _, _ = select.select([self._fd], [], [], timeout)
                if readable:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._fd, 4096):
                            pass
                on_wake()
                handled = due if due is not None and due <= time.time() else None
                self._keep_registered()
            except Exception:
                self._warn_once("listener", "common_api level listener failed; it retries",
                                exc_info=True)
                time.sleep(RETRY_AFTER_ERROR)

    def _keep_registered(self) -> None:
        """Put this worker's FIFO and ack back if they were removed (the state directory
        deleted and recreated), so setters find and wake it again."""
        pid = os.getpid()
        try:
            fifo_in_place = os.stat(self._wake_path(pid)).st_ino == self._fifo_inode
        except FileNotFoundError:
            fifo_in_place = False
        if fifo_in_place and self._ack_path(pid).exists():
            self._found_missing = False
            return
        # missing on two checks in a row: a removal still in progress (rm -r) is left alone
        if not self._found_missing:
            self._found_missing = True
            return
        self._found_missing = False
        if not fifo_in_place:
            try:
                self.directory.mkdir(exist_ok=True)  # never the state directory itself
                old, self._fd = self._fd, self._open_fifo()
            except OSError:
                return  # still gone: tried again next time
            if old is not None:
                with contextlib.suppress(OSError):
                    os.close(old)
            log.info("common_api level listener registered again in %s", self.directory)
        if self._acked is not None:
            self.acknowledge(self._acked)

    def acknowledge(self, generation: int) -> None:
        """Record that this process now applies ``generation`` of the levels file."""
        if not self.listening or self._started is None:
            return
        self._acked = generation
        try:
            write_json_atomically(self._ack_path(os.getpid()), {
                "pid": os.getpid(), "started": self._started, "generation": generation})
        except OSError as exc:
            self._warn_once(f"ack:{exc.errno}", "common_api cannot acknowledge log levels "
                            "(%s); level sets will name this worker until it can", exc)

    def withdraw(self, pid: int) -> None:
        """Remove the FIFO and ack of worker ``pid`` (it has exited)."""
        for path in (self._wake_path(pid), self._ack_path(pid)):
            with contextlib.suppress(OSError):
                path.unlink()

    # ----------------------------------------------------------------- the setter's side

    def peers(self) -> dict[int, Ack]:
        """The last ack of every other worker that is provably alive: the process with
        that pid has the start time the ack records."""
        own = os.getpid()
        found: dict[int, Ack] = {}
        try:
            paths = list(self.directory.glob("*.ack"))
        except OSError:
            return found
        for path in paths:
            ack = _read_ack(path)
            if ack is not None and ack.pid != own and peers.is_running(ack.worker):
                found[ack.pid] = ack
        return found

    def wake(self, pids: list[int]) -> set[int]:
        """Wake each of ``pids`` through its FIFO; the pids that have one to wake."""
        woken: set[int] = set()
        for pid in pids:
            path = self._wake_path(pid)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            except OSError:  # gone, or no reader (ENXIO): nobody to wake
                continue
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, b"w")
                    woken.add(pid)
            except BlockingIOError:
                woken.add(pid)  # full: a wake-up is already waiting
            except OSError:
                continue
            finally:
                os.close(fd)
        return woken

    def wake_all(self) -> None:
        """Wake every other live worker without waiting (and this process's listener)."""
        self.wake([*self.peers(), os.getpid()])

    def wait_for(self, generation: int, wake_self: bool = False) -> dict[int, str]:
        """Wake every other live worker and wait, at most ``ack_timeout`` seconds, until each
        applies ``generation`` or later; the pids that did not, in order, each with why.
        A stopped worker (SIGSTOP, a debugger) is named at once: it cannot answer until it
        is resumed, and then its wake-up is waiting for it. ``wake_self`` also wakes this
        process's listener (a new timed level: it reschedules its revert)."""
        deadline = time.monotonic() + self.ack_timeout
        acks = self.peers()
        pending = {pid: ack.worker for pid, ack in acks.items() if ack.generation < generation}
        # a sibling worker with no ack yet (starting, or its ack was lost with the directory)
        # is waited for too: it acknowledges from its background tick
        pending.update((worker.pid, worker) for worker in peers.server_workers()
                       if worker.pid not in acks)
        woken = self.wake([*pending, *([os.getpid()] if wake_self else [])])
        late: dict[int, str] = {}
        delay = _FIRST_POLL
        while True:
            for pid, worker in list(pending.items()):
                ack = _read_ack(self._ack_path(pid))
                now = peers.current(worker)
                applied = ack is not None and ack.started == worker.start_time and \
                    ack.generation >= generation
                if now is None or applied:  # exited, or done
                    del pending[pid]
                elif now.stopped:
                    late[pid] = STOPPED
                    del pending[pid]
            if not pending or time.monotonic() >= deadline:
                for pid, worker in pending.items():
                    ack = _read_ack(self._ack_path(pid))
                    lost = pid not in woken and (ack is None or ack.started != worker.start_time)
                    late[pid] = FILES_GONE if lost else NO_ACK
                return dict(sorted(late.items()))
            time.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    def _warn_once(self, key: str, message: str, *args: object,
                   exc_info: bool = False) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args, exc_info=exc_info)
