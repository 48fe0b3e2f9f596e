"""What a running profile (and a memory window) costs a host route, side by side in one run.

One ``common-api serve`` (the demo, one gthread worker with 4 threads, so a window runs in
the very worker that serves the load) is driven by ``wrk`` on its trivial ``/`` route, in
rounds that alternate three conditions (the order reversed every other round):

- ``none``:    no window;
- ``profile``: ``GET /profile?hz=100`` samples the worker for the whole load;
- ``memory``:  ``GET /memory`` traces the worker's allocations for the whole load.

Two figures per condition, each the condition's median over rounds divided by ``none``'s:

- requests/s, wrk's figure: what the acceptance bar (>= 0.95 for ``profile``) is about,
  but on a machine shared with other work it moves with their load;
- requests per CPU-second of the worker (wrk's request count over the worker's user+system
  CPU time in ``/proc`` for the same seconds): throughput when the worker is the
  bottleneck, and far steadier, since the CPU others take is not counted.

Also printed: the sampler's achieved rate and its own CPU (from the profile's JSON), and
the commands.

    python benchmarks/bench_profile.py [--rounds 9] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import free_port, stop_process_group

ROUTE = "/"
BAR = 0.95
WINDOWS = {"none": None, "profile": "/profile?hz=100&format=json",
           "memory": "/memory?format=json"}
LEAD = 0.75  # a window starts this long before the load, and outlasts it by as much
TICKS = os.sysconf("SC_CLK_TCK")


def get(url: str, timeout: float = 120.0) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def wait_ready(url: str, deadline: float = 60.0) -> int:
    """The worker's pid once the server answers."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            status, headers, _ = get(url + "/metrics", timeout=2)
            if status == 200:
                return int(headers["X-Worker-Pid"])
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} not ready within {deadline:g}s")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` so far."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wrk(argv: list[str]) -> tuple[float, int]:
    """(requests/s, requests) of one wrk run."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    if done.returncode != 0 or rate is None or count is None:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise RuntimeError(f"the route failed under load: {errors.group(0)}")
    return float(rate.group(1)), int(count.group(1))


def measure(base: str, pid: int, window: str | None, seconds: float, wrk_argv: list[str]
            ) -> tuple[float, float, dict[str, Any]]:
    """requests/s and requests per CPU-second under ``window``, and the window's JSON."""
    answer: list[tuple[int, dict[str, str], bytes]] = []
    asker = None
    if window is not None:
        url = f"{base}{window}&seconds={seconds + 2 * LEAD:g}"
        asker = threading.Thread(target=lambda: answer.append(get(url)))
        asker.start()
        time.sleep(LEAD)
    cpu = cpu_seconds(pid)
    rate, count = wrk(wrk_argv)
    per_cpu = count / max(cpu_seconds(pid) - cpu, 1 / TICKS)
    document: dict[str, Any] = {}
    if asker is not None:
        asker.join()
        status, _, body = answer[0]
        if status != 200:
            raise RuntimeError(f"{window} answered {status}")
        document = json.loads(body)
    return rate, per_cpu, document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=4.0, help="wrk seconds per condition")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    wrk_path = shutil.which("wrk")
    if wrk_path is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the server on the way out
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "common_api.cli", "serve", "--workers", "1", "--threads",
             "4", "--bind", f"127.0.0.1:{port}"]
    wrk_argv = [wrk_path, "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s", base + ROUTE]
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMMON_API_")}
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, start_new_session=True)
    rates: dict[str, list[float]] = {name: [] for name in WINDOWS}
    per_cpu: dict[str, list[float]] = {name: [] for name in WINDOWS}
    achieved: list[float] = []
    sampler_cpu: list[float] = []
    try:
        pid = wait_ready(base)
        wrk([*wrk_argv[:3], "-d2s", wrk_argv[-1]])  # warm-up
        for round_ in range(args.rounds):
            order = list(WINDOWS) if round_ % 2 == 0 else list(reversed(WINDOWS))
            for name in order:
                rate, efficiency, document = measure(base, pid, WINDOWS[name], args.seconds,
                                                     wrk_argv)
                rates[name].append(rate)
                per_cpu[name].append(efficiency)
                if name == "profile":
                    achieved.append(document["rate_achieved_hz"])
                    sampler_cpu.append(document["sampler_cpu_seconds"]
                                       / document["duration_seconds"])
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {rates[name][-1]:.0f} req/s {per_cpu[name][-1]:.0f} req/cpu-s"
                for name in WINDOWS) + f", sampler {achieved[-1]:.1f} Hz", flush=True)
    finally:
        stop_process_group(server)

    def ratio(series: dict[str, list[float]], name: str) -> float:
        return statistics.median(series[name]) / statistics.median(series["none"])

    print()
    print(f"host route {ROUTE} of the demo, 1 gthread worker x 4 threads, wrk -c"
          f"{args.connections}; {args.rounds} rounds of {args.seconds:g} s per condition, "
          "medians; ratios to no window:")
    print(f"  no window:          {statistics.median(rates['none']):8.0f} req/s "
          f"{statistics.median(per_cpu['none']):8.0f} req/cpu-s")
    for name, label in (("profile", "100 Hz profile:"), ("memory", "memory window:")):
        print(f"  {label:19} {statistics.median(rates[name]):8.0f} req/s "
              f"{statistics.median(per_cpu[name]):8.0f} req/cpu-s   ratios "
              f"{ratio(rates, name):.3f} (req/s)  {ratio(per_cpu, name):.3f} (req/cpu-s)")
    print(f"  bar for the profile: >= {BAR}")
    print(f"  sampler's achieved rate: {statistics.median(achieved):.1f} Hz (requested 100); "
          f"its own CPU: {100 * statistics.median(sampler_cpu):.2f}% of one core")
    print("commands:")
    print(f"  {shlex.join(serve)}")
    print(f"  {shlex.join(wrk_argv)}")
    print(f"  GET {base}/profile?hz=100&format=json&seconds={args.seconds + 2 * LEAD:g} "
          f"(or /memory?format=json&seconds=...), {LEAD:g} s before the load")
    return 0 if min(ratio(rates, "profile"), ratio(per_cpu, "profile")) >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
