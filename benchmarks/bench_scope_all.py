"""``/threads?scope=all`` latency at several worker counts, this checkout against another.

For each worker count a ``common-api serve`` of the multi-worker test app
(``tests/apps/multi_app.py``) is started from this checkout, and with ``--before DIR`` (a
checkout of an earlier commit, e.g. ``git worktree add DIR main`` or ``git archive``) a
second one run from DIR. Both run at once and are asked in alternation, each call on a new
connection, so load on the machine falls on both alike. Printed per worker count: the
median and quartiles in milliseconds, how many calls listed every worker under the GIL,
and the ratio of the medians (after / before).

Usage: python benchmarks/bench_scope_all.py [--workers 3,16] [--samples 40]
       [--before DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _procs import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"


def dump(port: int) -> tuple[float, dict[str, str]]:
    """One scope=all dump on a new connection: seconds, and each worker's source."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/threads?scope=all&format=json")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"/threads answered {response.status}: {body[:200]!r}")
    workers = json.loads(body)["workers"]
    return elapsed, {str(entry["pid"]): str(entry["source"]) for entry in workers}


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    times: list[float] = field(default_factory=list)
    complete: int = 0


@contextmanager
def serving(name: str, workers: int, code: Path, logs: Path) -> Iterator[Server]:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("COMMON_API_", "PROMETHEUS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(code), str(APPS)])
    log = (logs / f"{name}-{workers}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "common_api.cli", "serve", "--app", "multi_app:app",
         "--workers", str(workers), "--bind", f"127.0.0.1:{port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        server = Server(name, port, process)
        wait_listed(server, workers)
        yield server
    finally:
        stop_process_group(process)
        log.close()


def wait_listed(server: Server, workers: int, timeout: float = 120.0) -> None:
    """Until a dump lists every worker under the GIL (each runtime started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} server exited early")
        try:
            _, sources = dump(server.port)
            if len(sources) == workers and set(sources.values()) == {"python"}:
                return
        except (OSError, RuntimeError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name}: not every worker listed within {timeout:g} s")


def measure(servers: list[Server], workers: int, samples: int, warmup: int = 3) -> None:
    for round_number in range(warmup + samples):
        for server in servers:
            elapsed, sources = dump(server.port)
            if round_number < warmup:
                continue
            server.times.append(elapsed)
            if len(sources) == workers and set(sources.values()) == {"python"}:
                server.complete += 1


def describe(server: Server) -> str:
    times = sorted(1000 * t for t in server.times)
    q1, median, q3 = statistics.quantiles(times, n=4)
    return (f"{server.name:>7}: median {median:7.1f} ms  (q1 {q1:.1f}, q3 {q3:.1f})  "
            f"every worker under the GIL in {server.complete}/{len(times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", default="3,16")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--before", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scope-all-") as logs:
        for workers in (int(n) for n in args.workers.split(",")):
            with serving("after", workers, ROOT, Path(logs)) as after:
                if args.before is None:
                    measure([after], workers, args.samples)
                    print(f"{workers} workers\n  {describe(after)}", flush=True)
                    continue
                with serving("before", workers, args.before, Path(logs)) as before:
                    measure([after, before], workers, args.samples)
                    ratio = statistics.median(after.times) / statistics.median(before.times)
                    print(f"{workers} workers\n  {describe(after)}\n  {describe(before)}\n"
                          f"  after/before median ratio: {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
