"""Worker enumeration from the process table (common_api.workers.peers), on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from common_api.workers import peers

# A parent that forks children like a gunicorn master: the first two catch the worker
# signal, the third does not, the fourth catches it but runs another program (a sibling
# that is not a worker of this server); child 0 reports what it sees, then all exit.
FAMILY = textwrap.dedent("""
    import json, os, signal, sys, time
    from common_api.workers import peers

    def child(index, catches, report):
        if index == 3:
            os.execv(sys.executable, [sys.executable, "-c",
                     "import signal, time; from common_api.workers import peers; "
                     "signal.signal(peers.WORKER_SIGNAL, lambda *a: None); time.sleep(30)"])
        if catches:
            signal.signal(peers.WORKER_SIGNAL, lambda *a: None)
        if index == 0:
            time.sleep(1.5)
            seen = [[w.pid, w.start_time] for w in peers.server_workers()]
            me = peers.this_worker()
            os.write(report, json.dumps({"me": me.pid, "seen": seen,
                                         "siblings": sorted(peers.siblings())}).encode())
        else:
            time.sleep(30)
        os._exit(0)

    read_end, write_end = os.pipe()
    kids = []
    for index, catches in enumerate([True, True, False, True]):
        pid = os.fork()
        if pid == 0:
            child(index, catches, write_end)
        kids.append(pid)
    os.close(write_end)
    report = json.loads(os.read(read_end, 10000))
    report["kids"] = kids
    print(json.dumps(report), flush=True)
    for pid in kids[1:]:
        os.kill(pid, signal.SIGKILL)
    for pid in kids:
        os.waitpid(pid, 0)
""")


def test_server_workers_lists_siblings_that_catch_the_worker_signal_only() -> None:
    out = subprocess.run([sys.executable, "-c", FAMILY], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    report = json.loads(out)
    kids = report["kids"]
    assert report["me"] == kids[0]
    assert [pid for pid, _ in report["seen"]] == [kids[1]]


def test_siblings_are_every_other_child_of_the_master_booting_or_not() -> None:
    # a worker still booting has not caught the worker signal yet (kids[2] here), but the
    # files it is creating are a live process's: scrapes must not set them aside
    report = json.loads(subprocess.run([sys.executable, "-c", FAMILY], capture_output=True,
                                       text=True, timeout=60, check=True).stdout)
    kids = report["kids"]
    assert report["siblings"] == sorted(kids[1:])


def test_a_reused_pid_is_not_the_same_worker() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        stat = peers._stat(child.pid)
        assert stat is not None
        real = peers.Worker(child.pid, stat.start_time)
        impostor = peers.Worker(child.pid, stat.start_time - 1)
        assert peers.is_running(real)
        assert not peers.is_running(impostor)
        assert not peers.send_signal(impostor, signal.SIGTERM)
        time.sleep(0.1)
        assert child.poll() is None, "a worker record with the wrong start time was signalled"
        assert peers.send_signal(real, signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_an_exited_worker_is_not_running_and_gets_no_signal() -> None:
    child = subprocess.Popen(["true"])
    stat = peers._stat(child.pid)
    child.wait()
    start = stat.start_time if stat is not None else 0
    gone = peers.Worker(child.pid, start)
    assert not peers.is_running(gone)
    assert not peers.send_signal(gone, signal.SIGTERM)


def test_this_worker_is_this_process() -> None:
    me = peers.this_worker()
    assert me.pid == os.getpid()
    assert peers.is_running(me)
    assert not me.stopped
