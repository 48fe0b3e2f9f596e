"""What the flight recorder (``COMMON_API_PROFILE_HISTORY_SECONDS``) costs, side by side.

Two ``common-api serve`` processes of one small host app, one gthread worker each, run at
the same time: ``on`` (the default history, 600 s) and ``off`` (``0``). CPU is read from
the kernel's per-thread scheduler accounting (``/proc/<pid>/task/*/schedstat``, in
nanoseconds), summed over the worker's threads.

1. Idle cost: both workers sit idle over the same ``--idle-seconds`` (20 by default); each
   one's CPU over that span as a fraction of one core; the figure is ``on - off``. Per
   round, then the median over rounds.
2. Busy cost: the host route ``GET /work`` (a few milliseconds of Python) is driven with
   the same number of requests (2 client threads) at ``off`` and at ``on``, in chunks of
   ``--chunk`` requests that alternate between the two (the first server alternates every
   other chunk), so a drift of the shared machine falls on both; the worker's CPU per
   request in each, and ``on / off``. Median over rounds: throughput of a CPU-bound worker
   is 1 / CPU per request, so the ratio is the throughput cost (a bar of 1.01). The
   recorder's own share is read directly too: the CPU of its thread (found by
   ``/threads``) over the worker's, while ``on`` is driven. This one is exact to the
   kernel's accounting; the ratio adds what sampling costs the other threads (GIL
   hand-offs) and the machine's noise.
3. Memory: the recorder's own estimate and what tracemalloc counts for a 600 s history of
   the benchmark process with 12 threads (6,000 ticks recorded as fast as it can).

    python benchmarks/bench_flight_recorder.py [--rounds 3] [--idle-seconds 20] [--requests 1500]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _procs import free_port, stop_process_group

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP_SOURCE = '''
from flask import Flask
from common_api import bp

app = Flask("bench_recorder")
app.register_blueprint(bp)


@app.get("/work")
def work() -> str:
    total = 0
    for value in range(30000):
        total += value * value % 7
    return str(total)
'''
BUSY_BAR = 1.01
RECORDER_THREAD_NAME = "common-api-recorder"  # common_api.services.recorder
IDLE_BAR = 0.01


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (exited threads are in the leader's)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


@dataclass
class Server:
    label: str
    port: int
    process: subprocess.Popen[bytes]
    worker: int = 0
    recorder: int = 0  # native id of its recorder thread


@contextmanager
def serve(label: str, history: str, app_dir: Path) -> Iterator[Server]:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_")}
    env.update(PYTHONPATH=os.pathsep.join([str(app_dir), str(ROOT)]),
               COMMON_API_PROFILE_HISTORY_SECONDS=history)
    log = open(app_dir / f"{label}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "common_api.cli", "serve", "--app", "bench_app:app",
         "--workers", "1", "--bind", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(label, port, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = (app_dir / f"{label}.log").read_text()
                raise SystemExit(f"{label} server exited:\n{output}")
            try:
                status, headers, _ = get(port, "/work", timeout=2)
                if status == 200:
                    server.worker = int(headers["X-Worker-Pid"] if "X-Worker-Pid" in headers
                                        else worker_of(process.pid))
                    break
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or a worker still booting
            if time.monotonic() > deadline:
                raise SystemExit(f"{label} server not ready in 60 s")
            time.sleep(0.1)
        yield server
    finally:
        stop_process_group(process)
        log.close()


def worker_of(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def idle_round(servers: list[Server], seconds: float) -> dict[str, float]:
    before = {s.label: cpu_seconds(s.worker) for s in servers}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {s.label: (cpu_seconds(s.worker) - before[s.label]) / elapsed for s in servers}


def drive(server: Server, requests: int) -> tuple[float, float]:
    """Worker CPU seconds and the recorder thread's over ``requests`` requests of ``/work``."""
    before, recorder_before = cpu_seconds(server.worker), thread_cpu(server)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda _: get(server.port, "/work")[0], range(requests)))
    assert all(status == 200 for status in statuses), statuses
    return cpu_seconds(server.worker) - before, thread_cpu(server) - recorder_before


def thread_cpu(server: Server) -> float:
    """CPU seconds of the server's recorder thread so far (0 without one)."""
    if not server.recorder:
        return 0.0
    stat = Path(f"/proc/{server.worker}/task/{server.recorder}/schedstat").read_text()
    return int(stat.split()[0]) / 1e9


def recorder_thread(server: Server) -> int:
    """The native id of the worker's recorder thread, as /threads names it (0: none)."""
    _, _, body = get(server.port, "/threads?format=json")
    found = [0]

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if node.get("name") == RECORDER_THREAD_NAME and node.get("native_id"):
                found.append(int(node["native_id"]))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(json.loads(body))
    return found[-1]


def busy_round(servers: list[Server], requests: int, chunk: int, first: int
               ) -> dict[str, float]:
    """CPU per request of each server, and the recorder's share of ``on``'s CPU, over
    ``requests`` each in alternating chunks."""
    cpu = {s.label: 0.0 for s in servers}
    recorder = 0.0
    for index in range(max(1, requests // chunk)):
        pair = servers if (index + first) % 2 == 0 else list(reversed(servers))
        for server in pair:
            spent, own = drive(server, chunk)
            cpu[server.label] += spent
            recorder += own
    done = max(1, requests // chunk) * chunk
    return {"on": cpu["on"] / done, "off": cpu["off"] / done,
            "share": recorder / cpu["on"]}


def memory_figures() -> tuple[float, float]:
    """(estimate, traced) MiB of a full 600 s history of this process with 12 threads."""
    from common_api.services.recorder import HZ
    from common_api.services.recorder.history import SampleHistory, current_frames, thread_names

    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, name=f"idle-{i}") for i in range(11)]
    for thread in threads:
        thread.start()
    try:
        tracemalloc.start()
        history = SampleHistory(600, HZ)
        start = tracemalloc.get_traced_memory()[0]
        own = threading.get_ident()
        for tick in range(600 * HZ):
            history.record(current_frames(), thread_names(), own, tick / HZ, time.time())
        traced = tracemalloc.get_traced_memory()[0] - start
        tracemalloc.stop()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return history.memory_bytes / 2**20, traced / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--chunk", type=int, default=150)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "bench_app.py").write_text(APP_SOURCE)
        with serve("on", "600", app_dir) as on, serve("off", "0", app_dir) as off:
            servers = [on, off]
            for server in servers:
                drive(server, 20)  # warm up: imports, first requests
                server.recorder = recorder_thread(server)
            assert on.recorder and not off.recorder, "the recorder thread was not found"
            idle: list[dict[str, float]] = []
            busy: list[dict[str, float]] = []
            for round_ in range(args.rounds):
                idle.append(idle_round(servers, args.idle_seconds))
                busy.append(busy_round(servers, args.requests, args.chunk, round_))
                print(f"round {round_ + 1}: idle on {idle[-1]['on'] * 100:.3f} % / off "
                      f"{idle[-1]['off'] * 100:.3f} % of a core; CPU per request on "
                      f"{busy[-1]['on'] * 1e3:.3f} ms / off {busy[-1]['off'] * 1e3:.3f} ms; "
                      f"recorder thread {busy[-1]['share'] * 100:.3f} % of on's CPU")
    idle_cost = statistics.median(r["on"] - r["off"] for r in idle)
    ratio = statistics.median(r["on"] / r["off"] for r in busy)
    share = statistics.median(r["share"] for r in busy)
    estimate, traced = memory_figures()
    print()
    print(f"{'':34}{'off':>12}{'on':>12}{'on - off / on/off':>20}")
    print(f"{'idle worker, % of one core':34}"
          f"{statistics.median(r['off'] for r in idle) * 100:>12.3f}"
          f"{statistics.median(r['on'] for r in idle) * 100:>12.3f}{idle_cost * 100:>19.3f}%")
    print(f"{'host route, CPU ms per request':34}"
          f"{statistics.median(r['off'] for r in busy) * 1e3:>12.3f}"
          f"{statistics.median(r['on'] for r in busy) * 1e3:>12.3f}{ratio:>20.4f}")
    print(f"{'busy: recorder thread, % of CPU':34}{'':>12}{share * 100:>12.3f}")
    print(f"history of 600 s, 12 threads: estimate {estimate:.2f} MiB, traced {traced:.2f} MiB")
    verdict = idle_cost <= IDLE_BAR and ratio <= BUSY_BAR and share <= BUSY_BAR - 1
    print(f"bars: idle cost <= {IDLE_BAR * 100:g} % of a core, busy ratio <= {BUSY_BAR} and "
          f"the recorder thread's share <= {(BUSY_BAR - 1) * 100:.0f} %: "
          f"{'met' if verdict else 'NOT met'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
