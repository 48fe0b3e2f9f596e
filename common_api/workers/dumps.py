"""Stacks of every worker, even one whose Python threads are all blocked.

Each worker registers ``faulthandler`` on a real-time signal, writing to its own
``dumps/<pid>.txt``. faulthandler's handler is C code that runs in the signal handler
itself, so it needs nothing from the target's Python threads: a worker stuck in a lock
or a long C call still answers. The collecting worker signals the others and reads what
each appended.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import signal
import time
from dataclasses import replace
from typing import IO

from common_api.services.threads import Frame, ThreadInfo, render_threads
from common_api.workers.state_dir import StateDir, file_lock, live_peer_pids

DUMP_SIGNAL = signal.SIGRTMIN + 6
SETTLE_SECONDS = 0.05
_THREAD_LINE = re.compile(r"^(Current thread|Thread) (0x[0-9a-f]+)(.*)$")
_FRAME_LINE = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')


class WorkerDumps:
    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._file: IO[bytes] | None = None

    def install(self) -> None:
        """Make this process answer DUMP_SIGNAL by writing its stacks to its dump file."""
        if self._file is not None:
            self._file.close()
        self._file = self._state.worker_dump(os.getpid()).open("ab")
        faulthandler.register(DUMP_SIGNAL, file=self._file, all_threads=True, chain=False)

    def withdraw(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._state.worker_dump(pid).unlink()

    def peers(self) -> list[int]:
        """Pids of the other live workers that can be dumped."""
        return live_peer_pids(self._state.dumps, "*.txt")

    def collect(self, pids: list[int], timeout: float = 3.0) -> dict[int, str | None]:
        """Signal each worker and return what it wrote (None if it wrote nothing in time)."""
        with file_lock(self._state.dumps_lock, exclusive=True):
            offsets: dict[int, int] = {}
            for pid in pids:
                path = self._state.worker_dump(pid)
                try:
                    offsets[pid] = path.stat().st_size
                    os.kill(pid, DUMP_SIGNAL)
                except (FileNotFoundError, ProcessLookupError):
                    continue
            return {pid: self._read_when_settled(pid, offset, timeout)
                    for pid, offset in offsets.items()}

    def _read_when_settled(self, pid: int, offset: int, timeout: float) -> str | None:
        path = self._state.worker_dump(pid)
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
            elif size > offset and now - stable_since >= SETTLE_SECONDS:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    return handle.read(size - offset).decode("utf-8", "replace")
            time.sleep(0.01)
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


def _peer_block(pid: int, text: str | None, names: dict[str, str]) -> str:
    if text is None:
        return f"=== Worker {pid} ===\n(no dump within the deadline)"
    return f"=== Worker {pid} (faulthandler) ===\n{label_threads(text, names).rstrip()}"


def count_threads(dump: str | None) -> int:
    return sum(1 for line in (dump or "").splitlines() if _THREAD_LINE.match(line))


def render_all_workers(own_pid: int, own: list[ThreadInfo], peers: PeerDumps) -> str:
    """``/threads?scope=all`` as text: this worker's full dump, then each other worker's."""
    own_blocks = render_threads(own)
    sections = ["\n\n".join([f"=== Worker {own_pid} (answering) ===", *own_blocks])]
    sections.extend(_peer_block(pid, text, names) for pid, (text, names) in sorted(peers.items()))
    total = len(own_blocks) + sum(count_threads(text) for text, _ in peers.values())
    summary = f"=== Thread Summary ===\nWorkers: {1 + len(peers)}\nTotal threads: {total}\n"
    return "\n\n".join([*sections, summary])


def render_all_workers_json(own_pid: int, own: list[ThreadInfo], peers: PeerDumps
                            ) -> dict[str, object]:
    workers: list[dict[str, object]] = [
        {"pid": own_pid, "source": "python", "threads": [info.to_dict() for info in own]}]
    for pid, (text, names) in sorted(peers.items()):
        workers.append({"pid": pid, "source": "faulthandler",
                        "dump": None if text is None else label_threads(text, names)})
    return {"workers": workers}


PeerDumps = dict[int, tuple[str | None, dict[str, str]]]


def merge_workers(own_pid: int, own: list[ThreadInfo], peers: PeerDumps) -> list[ThreadInfo]:
    """This worker's threads and every peer's parsed dump, each named ``name@pid``."""
    threads = [replace(info, name=f"{info.name}@{own_pid}") for info in own]
    for pid, (text, names) in sorted(peers.items()):
        threads.extend(parse_dump(text or "", names, pid))
    return threads


def parse_dump(dump: str, names: dict[str, str], pid: int) -> list[ThreadInfo]:
    """faulthandler's text as ThreadInfo records (frames outermost first), named
    ``name@pid`` so that threads of several workers can be grouped together."""
    threads: list[ThreadInfo] = []
    ident: int | None = None
    frames: list[Frame] = []

    def close() -> None:
        if ident is not None:
            name = names.get(str(ident), hex(ident))
            threads.append(ThreadInfo(f"{name}@{pid}", ident, None, None,
                                      f"{name} (worker {pid})", tuple(reversed(frames))))

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
