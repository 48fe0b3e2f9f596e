"""Dumps of other processes (common_api.workers.dumps), on real processes without gunicorn.

Each "worker" is a child process that installs the dump side exactly as a worker does;
the collector is this test process, handed the worker records that ``workers.peers``
would list.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_until

from common_api.peer_channel import ChannelAddress
from common_api.services.threads import FAULTHANDLER, PYTHON, STOPPED, PeerDump
from common_api.workers import peers
from common_api.workers.dumps import ANSWER_SECONDS, WorkerDumps, label_threads

# argv: channel identity, ready marker, number of idle threads, then "gil" to hold the GIL
WORKER = textwrap.dedent("""
    import ctypes, os, sys, threading, time
    from pathlib import Path
    from common_api.peer_channel import ChannelAddress, PeerServer
    from common_api.workers.dumps import THREADS, WorkerDumps

    dumps = WorkerDumps()
    assert dumps.install()
    server = PeerServer(ChannelAddress(sys.argv[1], os.getpid()), {THREADS: dumps.answer},
                        lambda credentials: credentials.uid == os.geteuid())
    server.start()
    release = threading.Event()
    for index in range(int(sys.argv[3])):
        threading.Thread(target=release.wait, name=f"idle-{index}", daemon=True).start()

    def spin():
        while True:
            sum(range(1000))

    threading.Thread(target=spin, name="spinner", daemon=True).start()

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    def stuck_in_c_with_the_gil(seconds):
        libc = ctypes.PyDLL(None)
        mutex = ctypes.create_string_buffer(128)
        libc.pthread_mutex_lock(mutex)
        until = time.time() + seconds
        Path(sys.argv[2]).write_text("ready")
        libc.pthread_mutex_timedlock(mutex, ctypes.byref(Timespec(int(until), 0)))

    if sys.argv[4:] == ["gil"]:
        stuck_in_c_with_the_gil(60)
    Path(sys.argv[2]).write_text("ready")
    time.sleep(120)
""")


@pytest.fixture
def identity(tmp_path: Path) -> str:
    """The spawned workers' channel names (one set per test)."""
    return f"test-dumps-{os.getpid()}-{tmp_path.name}"


def collect(identity: str, worker: peers.Worker) -> list[PeerDump]:
    return WorkerDumps().collect([worker], lambda pid: ChannelAddress(identity, pid))


@pytest.fixture
def spawn(identity: str, tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(threads: int = 3, gil: bool = False) -> peers.Worker:
        ready = tmp_path / f"ready-{len(started)}"
        script = tmp_path / "dumped_worker.py"
        script.write_text(WORKER)
        args = [sys.executable, str(script), identity, str(ready), str(threads)]
        proc = subprocess.Popen([*args, "gil"] if gil else args)
        started.append(proc)
        wait_until(ready.exists, 60, message="the worker process")
        stat = peers._stat(proc.pid)
        assert stat is not None
        return peers.Worker(proc.pid, stat.start_time)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait(10)


def test_a_busy_worker_answers_under_the_gil_with_every_thread_named(
        identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=3)
    [dump] = collect(identity, worker)
    assert dump.source == PYTHON
    names = {info.name for info in dump.threads}
    # the channel answers from a short-lived request thread; whether the one before it
    # has ended yet is the scheduler's business, so request threads are counted apart
    assert names - {"common-api-peer-request"} == {
        "MainThread", "spinner", "idle-0", "idle-1", "idle-2", "common-api-peer-channel"}
    assert dump.total == len(dump.threads)
    main = next(info for info in dump.threads if info.name == "MainThread")
    assert main.frames[-1].function == "<module>"
    assert main.frames[-1].code == "time.sleep(120)"


def test_more_than_100_threads_are_all_listed_and_counted(
        identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=150)
    [dump] = collect(identity, worker)
    assert dump.source == PYTHON
    assert dump.total == len(dump.threads) >= 153
    assert sum(info.name.startswith("idle-") for info in dump.threads) == 150


def test_a_worker_holding_the_gil_is_still_dumped_by_faulthandler(
        identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=3, gil=True)
    started = time.monotonic()
    [dump] = collect(identity, worker)
    assert dump.source == FAULTHANDLER
    assert dump.text is not None and "in stuck_in_c_with_the_gil" in dump.text
    # main, spinner, three idle and the channel, plus a request thread if the channel got
    # to start one before the GIL was taken: the count /proc gives while the GIL is held
    total = len(os.listdir(f"/proc/{worker.pid}/task"))
    assert total >= 6 and dump.total == total
    assert ANSWER_SECONDS <= time.monotonic() - started < ANSWER_SECONDS + 5
    assert peers.is_running(worker)


def test_a_faulthandler_dump_cut_at_100_threads_still_counts_every_thread(
        identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=120, gil=True)
    [dump] = collect(identity, worker)
    assert dump.source == FAULTHANDLER
    assert len(dump.threads) == 100
    # 120 + the main thread + the channel's, and whatever the interpreter runs itself
    # (Python 3.13 has one more): the count /proc gives while the GIL is held
    total = len(os.listdir(f"/proc/{worker.pid}/task"))
    assert total >= 123 and dump.total == total
    assert f"shows 100 of {total} threads" in dump.note


def test_a_stopped_worker_is_listed_as_stopped_at_once_and_not_signalled(
        identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=2)
    os.kill(worker.pid, signal.SIGSTOP)
    wait_until(lambda: (peers.current(worker) or worker).stopped, 10, message="stopped")
    started = time.monotonic()
    [dump] = collect(identity, worker)
    assert dump.source == STOPPED and dump.total == 5
    assert time.monotonic() - started < ANSWER_SECONDS
    status = Path(f"/proc/{worker.pid}/status").read_text()
    pending = int(next(line for line in status.splitlines()
                       if line.startswith("ShdPnd:")).split()[1], 16)
    assert pending == 0, "a stopped worker was sent a signal that would queue up"


def test_repeated_dumps_write_no_file_and_leak_no_descriptor(
        identity: str, spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=3)
    before = set(tmp_path.rglob("*"))
    collect(identity, worker)
    fds = len(os.listdir(f"/proc/{worker.pid}/fd"))
    for _ in range(20):
        [dump] = collect(identity, worker)
        assert dump.source == PYTHON
    assert set(tmp_path.rglob("*")) == before
    # the last request's thread closes its connection just after answering
    wait_until(lambda: len(os.listdir(f"/proc/{worker.pid}/fd")) <= fds, 10,
               message="the worker's descriptors back to where they were")


def test_an_exited_worker_is_left_out(identity: str, spawn) -> None:  # type: ignore[no-untyped-def]
    worker = spawn(threads=1)
    os.kill(worker.pid, signal.SIGKILL)
    wait_until(lambda: not peers.is_running(worker), 10, message="exit")
    assert collect(identity, worker) == []


def test_label_threads_names_faulthandler_threads_by_ident(tmp_path: Path) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="units-sleeper", daemon=True)
    worker.start()
    try:
        dump_path = tmp_path / "dump.txt"
        with dump_path.open("w") as handle:
            faulthandler.dump_traceback(handle, all_threads=True)
        dump = dump_path.read_text()
    finally:
        release.set()
        worker.join(10)
    names = {str(threading.get_ident()): "MainThread-ish", str(worker.ident): "units-sleeper"}
    labelled = label_threads(dump, names)
    assert f"Current thread 0x{threading.get_ident():016x} [MainThread-ish]" in labelled
    assert f"Thread 0x{worker.ident:016x} [units-sleeper] (most recent call first):" in labelled
    assert len(labelled.splitlines()) == len(dump.splitlines())
    assert label_threads(dump, {}) == dump.rstrip("\n")
