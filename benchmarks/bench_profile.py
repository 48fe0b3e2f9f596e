"""What a running profile (and a memory window) costs a host route, side by side in one run.

One ``common-api serve`` (the demo, one gthread worker with 4 threads, so the profiled
worker is the one serving every request) is driven by ``wrk`` on its trivial ``/`` route in
alternating rounds of three conditions:

- ``idle``:    nothing else;
- ``profile``: while ``GET /profile?hz=100`` samples the same worker for the whole round;
- ``memory``:  while ``GET /memory`` traces its allocations for the whole round.

Each round's throughput under a window is divided by the same round's idle throughput;
the script prints the median of those ratios (the bar for ``profile``: at least 0.95), the
sampler's achieved rate (from ``X-Profile-Rate-Hz``), and the command lines used.

    python benchmarks/bench_profile.py [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import stop_process_group

ROUTE = "/"
BAR = 0.95


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 120.0) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def wait_ready(url: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if get(url + "/metrics", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} not ready within {deadline:g}s")


def wrk(argv: list[str]) -> float:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise RuntimeError(f"the route failed under load: {errors.group(0)}")
    return float(match.group(1))


def under_window(base: str, window: str | None, seconds: float, wrk_argv: list[str]
                 ) -> tuple[float, dict[str, str]]:
    """Requests/s of the route during ``seconds`` of wrk, with ``window`` running meanwhile."""
    if window is None:
        return wrk(wrk_argv), {}
    answer: list[tuple[int, dict[str, str], bytes]] = []
    asker = threading.Thread(target=lambda: answer.append(
        get(f"{base}{window}&seconds={seconds + 1.5:g}")))
    asker.start()
    time.sleep(0.75)  # the window has begun before the load does (and outlasts it)
    rate = wrk(wrk_argv)
    asker.join()
    status, headers, body = answer[0]
    if status != 200:
        raise RuntimeError(f"{window} answered {status}")
    if "/profile" in window:
        document = json.loads(body)
        headers["X-Sampler-Cpu"] = str(document["sampler_cpu_seconds"]
                                       / document["duration_seconds"])
    return rate, headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk seconds per condition")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    wrk_path = shutil.which("wrk")
    if wrk_path is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "common_api.cli", "serve", "--workers", "1", "--threads",
             "4", "--bind", f"127.0.0.1:{port}"]
    wrk_argv = [wrk_path, "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s", base + ROUTE]
    windows = {"idle": None, "profile": "/profile?hz=100&format=json",
               "memory": "/memory?format=json"}
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMMON_API_")}
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, start_new_session=True)
    ratios: dict[str, list[float]] = {"profile": [], "memory": []}
    rates: list[float] = []
    sampler_cpu: list[float] = []
    idle_rates: list[float] = []
    try:
        wait_ready(base)
        wrk([*wrk_argv[:3], "-d2s", wrk_argv[-1]])  # warm-up
        for round_ in range(args.rounds):
            order = list(windows) if round_ % 2 == 0 else list(reversed(windows))
            results: dict[str, float] = {}
            for name in order:
                results[name], headers = under_window(base, windows[name], args.seconds,
                                                      wrk_argv)
                if name == "profile":
                    rates.append(float(headers["X-Profile-Rate-Hz"]))
                    sampler_cpu.append(float(headers["X-Sampler-Cpu"]))
            idle_rates.append(results["idle"])
            for name in ratios:
                ratios[name].append(results[name] / results["idle"])
            print(f"round {round_ + 1}: idle {results['idle']:.0f} req/s, profile "
                  f"{results['profile']:.0f} ({ratios['profile'][-1]:.3f}), memory "
                  f"{results['memory']:.0f} ({ratios['memory'][-1]:.3f}), sampler "
                  f"{rates[-1]:.1f} Hz", flush=True)
    finally:
        stop_process_group(server)
    profile_ratio = statistics.median(ratios["profile"])
    print()
    print(f"host route {ROUTE} of the demo, 1 gthread worker x 4 threads, wrk -c"
          f"{args.connections}, {args.rounds} alternating rounds of {args.seconds:g} s")
    print(f"  idle throughput (median):              {statistics.median(idle_rates):.0f} req/s")
    print(f"  while a 100 Hz profile runs / idle:    {profile_ratio:.3f} (median; bar "
          f">= {BAR})")
    print(f"  sampler's achieved rate (median):      {statistics.median(rates):.1f} Hz "
          f"(requested 100)")
    print(f"  sampler's own CPU (median):            {100 * statistics.median(sampler_cpu):.2f}% "
          "of one core")
    print(f"  while a memory window runs / idle:     {statistics.median(ratios['memory']):.3f} "
          "(median)")
    print("commands:")
    print(f"  {shlex.join(serve)}")
    print(f"  {shlex.join(wrk_argv)}")
    print(f"  GET {base}/profile?hz=100&format=json&seconds={args.seconds + 1.5:g} "
          "(and /memory?format=json&seconds=...) during the load")
    return 0 if profile_ratio >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
