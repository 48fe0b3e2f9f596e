"""Slow clients must not silence health (issue 9, part 5).

``common-api serve`` with its defaults (2 workers x 4 threads, the demo app) while
``--slow`` connections send a request head one byte per second (reconnecting when the
server closes them) for ``--seconds``; meanwhile a health probe, once a second, asks
``/periodic-threads-health`` on a new connection with a 2 s timeout. Printed: probes
answered within 2 s, for gunicorn's own gthread worker (``GUNICORN_CMD_ARGS=--worker-class
gthread``, what the config used before) and for the config's default worker
(``common_api.gunicorn_worker.PlainErrorThreadWorker``), side by side in one run.

Then the price on ordinary traffic: wrk (keep-alive) on the demo's trivial host route
``/`` against both workers, in alternating 3-second rounds; printed: the medians and their
ratio.

Usage: python benchmarks/bench_slow_clients.py [--slow 20] [--seconds 20] [--only default]
       [--part slow|throughput|all] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from _procs import free_port, stop_process_group

PROBE_TIMEOUT = 2.0
VARIANTS = {"gthread": "--worker-class gthread", "default": ""}
SLOW_HEAD = (b"GET /periodic-threads-health HTTP/1.1\r\nHost: slow\r\n"
             b"X-Slow: " + b"s" * 200 + b"\r\n\r\n")


@contextlib.contextmanager
def serve(gunicorn_args: str, log_path: Path) -> Iterator[tuple[int, int]]:
    """A started server: (port, master pid)."""
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("COMMON_API_") and name != "PROMETHEUS_MULTIPROC_DIR"}
    if gunicorn_args:
        env["GUNICORN_CMD_ARGS"] = gunicorn_args
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "common_api.cli", "serve",
                                 "--bind", f"127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while probe(port) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        time.sleep(1.0)
        yield port, proc.pid
    finally:
        stop_process_group(proc)


def probe(port: int) -> float | None:
    """Seconds a health answer took (any status), or None if none came within 2 s."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", "/periodic-threads-health")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    return elapsed if elapsed <= PROBE_TIMEOUT else None


def slow_client(port: int, stop: threading.Event, stats: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                stats["connections"] += 1
                for byte in SLOW_HEAD:
                    if stop.wait(1.0):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            stats["closed_by_server"] += 1
            stop.wait(0.2)


def run(variant: str, slow: int, seconds: float, tmp: Path) -> str:
    with serve(VARIANTS[variant], tmp / f"{variant}.log") as (port, _):
        stop = threading.Event()
        stats = {"connections": 0, "closed_by_server": 0}
        clients = [threading.Thread(target=slow_client, args=(port, stop, stats), daemon=True)
                   for _ in range(slow)]
        for client in clients:
            client.start()
        time.sleep(1.0)  # let every slow client hold its connection
        answers: list[float | None] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            answers.append(probe(port))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        stop.set()
        for client in clients:
            client.join(10)
    answered = [a for a in answers if a is not None]
    worst = f", slowest {max(answered):.3f} s" if answered else ""
    return (f"{variant:8s} probes answered within {PROBE_TIMEOUT:g} s: {len(answered)} of "
            f"{len(answers)} ({100 * len(answered) / len(answers):.0f}%){worst}; slow "
            f"connections opened {stats['connections']}")


def workers_cpu_seconds(master: int) -> float:
    """utime + stime of the master's children (the workers), in seconds."""
    total = 0
    for task in Path(f"/proc/{master}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk_round(port: int, master: int, seconds: int = 3) -> tuple[float, float]:
    """(requests/s, worker CPU microseconds per request) of one wrk round."""
    cpu = workers_cpu_seconds(master)
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    cpu = workers_cpu_seconds(master) - cpu
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    requests = int(count.group(1)) if count else 0
    return (float(rate.group(1)) if rate else 0.0), 1e6 * cpu / max(requests, 1)


def throughput(rounds: int, tmp: Path) -> list[str]:
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    costs: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with contextlib.ExitStack() as stack:
        servers = {variant: stack.enter_context(serve(VARIANTS[variant], tmp / f"t-{variant}.log"))
                   for variant in VARIANTS}
        for index in range(rounds):
            order = list(VARIANTS) if index % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                rate, cost = wrk_round(*servers[variant])
                rates[variant].append(rate)
                costs[variant].append(cost)
    rate = {variant: statistics.median(values) for variant, values in rates.items()}
    cost = {variant: statistics.median(values) for variant, values in costs.items()}
    lines = [f"{variant:8s} host route / : median {rate[variant]:,.0f} req/s, "
             f"{cost[variant]:.0f} us worker CPU per request (rounds: "
             f"{', '.join(f'{v:,.0f}' for v in rates[variant])} req/s)" for variant in VARIANTS]
    lines.append(f"ratio default / gthread: requests/s {rate['default'] / rate['gthread']:.3f}, "
                 f"worker CPU per request {cost['default'] / cost['gthread']:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=sorted(VARIANTS))
    parser.add_argument("--part", choices=["slow", "throughput", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"common-api serve defaults (2 workers x 4 threads), {args.slow} slow clients "
          f"(1 byte/s), one health probe a second for {args.seconds:g} s")
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
        if args.part in {"slow", "all"}:
            for variant in [args.only] if args.only else list(VARIANTS):
                print(run(variant, args.slow, args.seconds, Path(tmp)), flush=True)
        if args.part in {"throughput", "all"}:
            for line in throughput(args.rounds, Path(tmp)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
