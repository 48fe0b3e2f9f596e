"""What ``/tasks`` costs (issue 21), side by side in one run.

(a) Reading 1,000 pending tasks: a real loop in a thread holds 1,000 tasks suspended in a
    three-frame chain (plus the issue's storage-loop tasks); the median time of the
    service's read, and of the whole ``GET /tasks`` answer (text and JSON) through Flask's
    test client, over ``--reads`` reads each. Bar: median under 100 ms.
(b) The host's own throughput while ``/tasks`` is called once a second: ``common-api
    serve`` with 2 workers of ``tests/apps/async_host.py`` (each worker's loop holding
    ``--tasks`` pending tasks), wrk on the host route ``/pid``, in rotating rounds with
    nothing asked, with a caller asking ``--path`` (``/tasks``; ``/tasks?scope=all`` makes
    both workers read theirs) once a second, and with a caller asking the host route
    ``/pid`` once a second (the control: what the rounds read when nothing differs); the
    ratio of the median rates. Bar: 0.98 or better.

    python benchmarks/bench_tasks.py [--tasks 1000] [--reads 50] [--rounds 10] [--seconds 5]
                                     [--path /tasks]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
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

from _procs import free_port, stop_process_group  # noqa: E402
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


def wrk_round(port: int, master: int, seconds: int, asking: str | None = None,
              answers: list[float] | None = None) -> Round:
    """One wrk round on ``/pid``; with ``asking``, that path is asked once a second from
    half a second in, once wrk's connections are open: a worker busy with the first call
    while wrk connects would get fewer of its keep-alive connections for the whole round,
    which measures where connections land, not what the call costs."""
    before = worker_cpu(master)
    with subprocess.Popen(["wrk", "-t2", "-c16", f"-d{seconds}s",
                           f"http://127.0.0.1:{port}/pid"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as wrk:
        if asking is None:
            output = wrk.communicate(timeout=seconds + 30)[0]
        else:
            time.sleep(0.5)
            with asking_once_a_second(port, asking) as durations:
                output = wrk.communicate(timeout=seconds + 30)[0]
            if answers is not None:
                answers.extend(durations)
    cpu = worker_cpu(master) - before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if rate is None or count is None:
        raise SystemExit(f"wrk gave no rate:\n{output}")
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


CONTROL = "/pid"  # a host route asked as often: the same rounds when nothing differs


def part_b(tasks: int, rounds: int, seconds: int, path: str) -> None:
    """Cycles of three rounds, in rotating order so that drift cancels: nothing asked,
    ``path`` asked once a second, and the control (the host route ``/pid`` asked once a
    second: the noise). For each, the ratio of median rates to nothing asked, the median
    of the cycles' ratios, and requests per worker CPU second (what other processes on
    the machine do to the rates moves this one less)."""
    conditions: list[str | None] = [None, path, CONTROL]
    results: dict[str | None, list[Round]] = {condition: [] for condition in conditions}
    answers: dict[str | None, list[float]] = {condition: [] for condition in conditions}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, server(tasks, Path(tmp)) as (port, master):
        wrk_round(port, master, 2)  # warm-up
        for index in range(rounds):
            for condition in conditions[index % 3:] + conditions[:index % 3]:
                results[condition].append(
                    wrk_round(port, master, seconds, condition, answers[condition]))
    base = results[None]
    print(f"(b) 2 workers, {tasks} pending tasks each, wrk -t2 -c16 on /pid, {rounds} cycles "
          f"of three {seconds} s rounds in rotating order, load average {load:.1f} to "
          f"{os.getloadavg()[0]:.1f}:")
    print(f"    nothing asked: median {statistics.median(r.rate for r in base):6.0f} req/s "
          f"({', '.join(f'{r.rate:.0f}' for r in base)})")
    for condition in (path, CONTROL):
        rows = results[condition]
        rate = statistics.median(r.rate for r in rows) / statistics.median(r.rate for r in base)
        cycles = statistics.median(b.rate / a.rate for a, b in zip(base, rows, strict=True))
        per_cpu = (sum(r.requests for r in rows) / sum(r.cpu for r in rows)) / \
            (sum(r.requests for r in base) / sum(r.cpu for r in base))
        label = "control " if condition == CONTROL else ""
        print(f"    {label}{condition} once a second: median "
              f"{statistics.median(r.rate for r in rows):6.0f} req/s "
              f"({', '.join(f'{r.rate:.0f}' for r in rows)}); answers median "
              f"{statistics.median(answers[condition]) * 1000:.1f} ms")
        print(f"      ratio of median rates {rate:.3f}, median of cycle ratios {cycles:.3f}, "
              f"requests per worker CPU second {per_cpu:.3f}"
              + ("" if condition == CONTROL else
                 f"   bar 0.98: {'met' if min(rate, cycles) >= 0.98 else 'MISSED'}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--path", default="/tasks", help="what part (b) asks once a second")
    parser.add_argument("--skip-load", action="store_true", help="part (a) only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    part_a(args.tasks, args.reads)
    if not args.skip_load:
        part_b(args.tasks, args.rounds, args.seconds, args.path)


if __name__ == "__main__":
    main()
