"""What ``/tasks`` costs (issue 21), side by side in one run.

(a) Reading 1,000 pending tasks: a real loop in a thread holds 1,000 tasks suspended in a
    three-frame chain (plus the issue's storage-loop tasks); the median time of the
    service's read, and of the whole ``GET /tasks`` answer (text and JSON) through Flask's
    test client, over ``--reads`` reads each. Bar: median under 100 ms.
(b) The host's own throughput while ``/tasks`` is called once a second: ``common-api
    serve`` with 2 workers of ``tests/apps/async_host.py`` (each worker's loop holding
    ``--tasks`` pending tasks), wrk on the host route ``/pid``, in alternating rounds
    without and with a caller asking ``--path`` (``/tasks``; ``/tasks?scope=all`` makes
    both workers read theirs) once a second; the ratio of the median rates. Bar: 0.98 or
    better.

    python benchmarks/bench_tasks.py [--tasks 1000] [--reads 50] [--rounds 10] [--seconds 5]
                                     [--path /tasks] [--control]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "apps")]

from _procs import stop_process_group  # noqa: E402
from asyncio_hosts import LoopThread, fetch_from_remote, storage_main  # noqa: E402


def median_ms(action: Callable[[], object], reads: int) -> float:
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def part_a(tasks: int, reads: int) -> None:
    from flask import Flask

    from common_api import bp
    from common_api.services.tasks import TaskDumpService

    async def main(host: LoopThread) -> None:
        import asyncio

        extra = [asyncio.create_task(fetch_from_remote(i), name=f"extra-fetch-{i}")
                 for i in range(tasks)]
        try:
            await storage_main(host)
        finally:
            for task in extra:
                task.cancel()

    host = LoopThread("storage-loop", main).start()
    try:
        service = TaskDumpService()
        listed = service.dump().total()
        app = Flask("bench_tasks")
        app.register_blueprint(bp)
        client = app.test_client()
        read = median_ms(service.dump, reads)
        text = median_ms(lambda: client.get("/tasks").get_data(), reads)
        as_json = median_ms(lambda: client.get("/tasks?format=json").get_data(), reads)
    finally:
        host.close()
    print(f"(a) {listed} pending tasks in one loop thread, median of {reads} reads each:")
    print(f"    service read             {read:7.1f} ms")
    print(f"    GET /tasks (text)        {text:7.1f} ms   bar 100 ms: "
          f"{'met' if text < 100 else 'MISSED'}")
    print(f"    GET /tasks?format=json   {as_json:7.1f} ms   bar 100 ms: "
          f"{'met' if as_json < 100 else 'MISSED'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def server(tasks: int, log_dir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS / "apps"), str(TESTS), str(ROOT)])
    env["ASYNC_HOST_EXTRA_TASKS"] = str(tasks)
    log_path = log_dir / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "common_api.cli", "serve", "--app", "async_host:app",
             "--workers", "2", "--bind", f"127.0.0.1:{port}"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited:\n{log_path.read_text()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, body = get(port, "/tasks?scope=all&format=json", 5)
                if status == 200 and body.count(b'"answered": true') + \
                        body.count(b'"answered":true') == 2:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield port, proc.pid
    finally:
        stop_process_group(proc)


@dataclass
class Round:
    rate: float  # wrk's requests per second
    requests: int
    cpu: float  # CPU seconds the workers used meanwhile

    @property
    def per_cpu(self) -> float:
        return self.requests / self.cpu


def worker_cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by the master's children, the workers."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{master}/task").iterdir():
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    with contextlib.suppress(OSError):
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk_round(port: int, master: int, seconds: int) -> Round:
    before = worker_cpu(master)
    done = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", f"http://127.0.0.1:{port}/pid"],
                          capture_output=True, text=True, timeout=seconds + 30)
    cpu = worker_cpu(master) - before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    if rate is None or count is None:
        raise SystemExit(f"wrk gave no rate:\n{done.stdout}{done.stderr}")
    return Round(float(rate.group(1)), int(count.group(1)), cpu)


@contextlib.contextmanager
def asking_once_a_second(port: int, path: str) -> Iterator[list[float]]:
    """A caller of ``path`` once a second; yields the answers' durations."""
    stop = threading.Event()
    durations: list[float] = []

    def ask() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = get(port, path)
            if status != 200:
                raise SystemExit(f"/tasks answered {status}")
            durations.append(time.perf_counter() - started)
            stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))

    thread = threading.Thread(target=ask, name="tasks-caller", daemon=True)
    thread.start()
    try:
        yield durations
    finally:
        stop.set()
        thread.join(30)


def part_b(tasks: int, rounds: int, seconds: int, path: str) -> None:
    """Rounds without and with the caller, in ABBA order (drift cancels); the ratio of
    median rates, the median of the pairs' ratios, and requests per worker CPU second
    (what other processes on the machine do to the rates does not move this one)."""
    without: list[Round] = []
    with_calls: list[Round] = []
    answers: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, server(tasks, Path(tmp)) as (port, master):
        wrk_round(port, master, 2)  # warm-up
        for index in range(rounds):
            for asking in ((False, True) if index % 2 == 0 else (True, False)):
                if asking:
                    with asking_once_a_second(port, path) as durations:
                        with_calls.append(wrk_round(port, master, seconds))
                    answers.extend(durations)
                else:
                    without.append(wrk_round(port, master, seconds))
    rates = (statistics.median(r.rate for r in without),
             statistics.median(r.rate for r in with_calls))
    pairs = statistics.median(b.rate / a.rate for a, b in zip(without, with_calls, strict=True))
    per_cpu = (sum(r.requests for r in with_calls) / sum(r.cpu for r in with_calls)) / \
        (sum(r.requests for r in without) / sum(r.cpu for r in without))
    print(f"(b) 2 workers, {tasks} pending tasks each, wrk -t2 -c8 on /pid, {rounds} pairs "
          f"of {seconds} s rounds (ABBA), load average {os.getloadavg()[0]:.1f}:")
    print(f"    without: median {rates[0]:6.0f} req/s "
          f"({', '.join(f'{r.rate:.0f}' for r in without)})")
    print(f"    {path} once a second: median {rates[1]:6.0f} req/s "
          f"({', '.join(f'{r.rate:.0f}' for r in with_calls)})")
    print(f"    {len(answers)} {path} answers under load, median "
          f"{statistics.median(answers) * 1000:.1f} ms")
    print(f"    ratio of median rates {rates[1] / rates[0]:.3f}, median of pair ratios "
          f"{pairs:.3f}")
    print(f"    requests per worker CPU second: {per_cpu:.3f} of without   bar 0.98: "
          f"{'met' if per_cpu >= 0.98 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--path", default="/tasks", help="what part (b) asks once a second")
    parser.add_argument("--control", action="store_true",
                        help="then part (b) again asking the host route /pid instead: "
                             "what the same rounds read when nothing differs (the noise)")
    parser.add_argument("--skip-load", action="store_true", help="part (a) only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    part_a(args.tasks, args.reads)
    if not args.skip_load:
        part_b(args.tasks, args.rounds, args.seconds, args.path)
        if args.control:
            part_b(args.tasks, args.rounds, args.seconds, "/pid")


if __name__ == "__main__":
    main()
