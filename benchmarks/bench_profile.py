"""What a running profile (and a memory window) costs a host route, side by side in one run.

Two identical ``common-api serve`` processes (the demo, one gthread worker with 4 threads
each, so a window runs in the very worker that serves the load) are driven by two ``wrk``
at the same time on their trivial ``/`` route. In each round, for each condition, one of
the two (alternating between rounds, so neither server's luck counts) runs a window while
both are loaded, and the round's figure is its throughput divided by the other's over the
same seconds: load from other programs on the machine falls on both alike.

- ``none``:    no window on either (the noise floor of the pairing);
- ``profile``: ``GET /profile?hz=100`` samples the loaded worker for the whole load;
- ``memory``:  ``GET /memory`` traces the loaded worker's allocations for the whole load.

Printed: per-round figures, the medians (the bar for ``profile``: at least 0.95), the
sampler's achieved rate and its own CPU (from the profile's JSON), and the commands.

    python benchmarks/bench_profile.py [--rounds 9] [--seconds 4]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import stop_process_group

ROUTE = "/"
BAR = 0.95
WINDOWS = {"none": None, "profile": "/profile?hz=100&format=json",
           "memory": "/memory?format=json"}
LEAD = 0.75  # a window starts this long before the load, and outlasts it by as much


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 120.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


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


def paired_round(bases: list[str], wrk_argvs: list[list[str]], target: int,
                 window: str | None, seconds: float) -> tuple[float, dict[str, Any]]:
    """Load both servers at once while ``target`` runs ``window``; target/other rate."""
    answer: list[tuple[int, bytes]] = []
    asker = None
    if window is not None:
        url = f"{bases[target]}{window}&seconds={seconds + 2 * LEAD:g}"
        asker = threading.Thread(target=lambda: answer.append(get(url)))
        asker.start()
        time.sleep(LEAD)
    with ThreadPoolExecutor(2) as pool:
        rates = list(pool.map(wrk, wrk_argvs))
    document: dict[str, Any] = {}
    if asker is not None:
        asker.join()
        status, body = answer[0]
        if status != 200:
            raise RuntimeError(f"{window} answered {status}")
        document = json.loads(body)
    return rates[target] / rates[1 - target], document


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
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    serves = [[sys.executable, "-m", "common_api.cli", "serve", "--workers", "1", "--threads",
               "4", "--bind", f"127.0.0.1:{port}"] for port in ports]
    wrk_argvs = [[wrk_path, "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s",
                  base + ROUTE] for base in bases]
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMMON_API_")}
    servers = [subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, start_new_session=True) for serve in serves]
    ratios: dict[str, list[float]] = {name: [] for name in WINDOWS}
    rates: list[float] = []
    sampler_cpu: list[float] = []
    try:
        for base in bases:
            wait_ready(base)
        with ThreadPoolExecutor(2) as pool:  # warm-up
            list(pool.map(wrk, [[*argv[:3], "-d2s", argv[-1]] for argv in wrk_argvs]))
        for round_ in range(args.rounds):
            target = round_ % 2
            order = list(WINDOWS) if round_ % 4 < 2 else list(reversed(WINDOWS))
            for name in order:
                ratio, document = paired_round(bases, wrk_argvs, target, WINDOWS[name],
                                               args.seconds)
                ratios[name].append(ratio)
                if name == "profile":
                    rates.append(document["rate_achieved_hz"])
                    sampler_cpu.append(document["sampler_cpu_seconds"]
                                       / document["duration_seconds"])
            print(f"round {round_ + 1} (window on server {'AB'[target]}): none "
                  f"{ratios['none'][-1]:.3f}, profile {ratios['profile'][-1]:.3f} (sampler "
                  f"{rates[-1]:.1f} Hz), memory {ratios['memory'][-1]:.3f}", flush=True)
    finally:
        for server in servers:
            stop_process_group(server)
    profile_ratio = statistics.median(ratios["profile"])
    print()
    print(f"host route {ROUTE} of the demo, 2 servers x 1 gthread worker x 4 threads, loaded "
          f"together by wrk -c{args.connections}; {args.rounds} rounds of {args.seconds:g} s "
          "per condition; throughput of the server with the window / the other, medians:")
    print(f"  no window (noise floor):            {statistics.median(ratios['none']):.3f}")
    print(f"  a 100 Hz profile running:           {profile_ratio:.3f} (bar >= {BAR})")
    print(f"  sampler's achieved rate:            {statistics.median(rates):.1f} Hz "
          "(requested 100)")
    print(f"  sampler's own CPU:                  {100 * statistics.median(sampler_cpu):.2f}% "
          "of one core")
    print(f"  a memory window running:            {statistics.median(ratios['memory']):.3f}")
    print("commands:")
    for serve in serves:
        print(f"  {shlex.join(serve)}")
    for wrk_argv in wrk_argvs:
        print(f"  {shlex.join(wrk_argv)}")
    print(f"  GET <server>/profile?hz=100&format=json&seconds={args.seconds + 2 * LEAD:g} "
          f"(or /memory?format=json&seconds=...), {LEAD:g} s before the load")
    return 0 if profile_ratio >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
