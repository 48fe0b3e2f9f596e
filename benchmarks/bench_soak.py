"""Soak: a 3-worker server under mixed load, a worker SIGKILLed every 10 s, and
``/threads?scope=all`` dumps throughout (issue 9, part 7).

``common-api serve --app bench_soak:app --workers 3`` serves ``create_app()`` below: the
blueprint, a host route ``/work`` that increments a host counter, and a critical and a
high periodic thread that always succeed (so every health 503 is a false alarm). For
``--seconds`` (60): ``--clients`` threads (6) send a mix of host and operational requests,
one more thread asks for ``scope=all`` dumps back to back, and every 10 s one worker is
SIGKILLed. Printed at the end:

- requests by endpoint, with their 5xx answers and connection errors (a request in flight
  on the worker that was just killed loses its connection; that is not a 5xx);
- worker deaths by signal, from gunicorn's log, without the ones this script caused;
- the host counter as ``/metrics`` reads it once the load stopped, against the number of
  ``/work`` requests answered 200 (equal, up to the requests in flight on killed workers);
- false health alarms: ``/periodic-threads-health`` answers 503.

Usage: python benchmarks/bench_soak.py [--seconds 60] [--clients 6]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from _procs import stop_process_group

if TYPE_CHECKING:
    from flask import Flask

HERE = Path(__file__).resolve().parent
WORKERS = 3
KILL_EVERY = 10.0
MIX = ["/work"] * 6 + ["/metrics", "/periodic-threads-health", "/periodic-threads",
                       "/loglevel", "/threads", "/env"]
_DEATH = re.compile(r"Worker \(pid:(\d+)\) was sent (SIG[A-Z]+)")
_EXIT = re.compile(r"Worker \(pid:(\d+)\) exited with code (\d+)")


def create_app() -> Flask:
    from flask import Flask, jsonify
    from prometheus_client import Counter

    from common_api import ThreadLevel, bp, create_periodic_thread

    work = Counter("soak_work", "Requests to /work")
    create_periodic_thread("soak-heartbeat", 0.5, lambda: True,
                           level=ThreadLevel.CRITICAL).start()
    create_periodic_thread("soak-watchdog", 1.0, lambda: True, level=ThreadLevel.HIGH).start()
    app = Flask("bench_soak")
    app.register_blueprint(bp)

    @app.get("/work")
    def handle() -> Any:
        work.inc()
        return jsonify(pid=os.getpid())

    return app


def master_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return children


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: collections.Counter[tuple[str, int]] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.alarms: list[str] = []

    def record(self, path: str, status: int | None, body: str = "") -> None:
        with self.lock:
            if status is None:
                self.errors[path] += 1
                return
            self.answers[(path, status)] += 1
            if path == "/periodic-threads-health" and status == 503:
                self.alarms.append(body[:300])


def drive(base: str, paths: list[str], stop: threading.Event, tally: Tally) -> None:
    session = requests.Session()
    rng = random.Random()
    while not stop.is_set():
        path = rng.choice(paths)
        try:
            response = session.get(base + path, timeout=30)
        except requests.RequestException:
            tally.record(path, None)
            session = requests.Session()
            continue
        tally.record(path, response.status_code, response.text)


def run(seconds: float, clients: int) -> int:
    port = int(os.environ.get("SOAK_PORT", "0")) or _free_port()
    base = f"http://127.0.0.1:{port}"
    log_fd, log_path = tempfile.mkstemp(prefix="soak-", suffix=".log")
    command = [sys.executable, "-m", "common_api.cli", "serve", "--app", "bench_soak:app",
               "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(command, stdout=log_fd, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    os.close(log_fd)
    killed: set[int] = set()
    tally = Tally()
    try:
        _wait_ready(base, server)
        stop = threading.Event()
        threads = [threading.Thread(target=drive, args=(base, MIX, stop, tally))
                   for _ in range(clients)]
        threads.append(threading.Thread(target=drive,
                                        args=(base, ["/threads?scope=all"], stop, tally)))
        for thread in threads:
            thread.start()
        started = time.monotonic()
        next_kill = started + KILL_EVERY
        while time.monotonic() - started < seconds:
            time.sleep(0.2)
            if time.monotonic() >= next_kill:
                victims = master_children(server.pid)
                if victims:
                    victim = random.choice(victims)
                    killed.add(victim)
                    os.kill(victim, signal.SIGKILL)
                next_kill += KILL_EVERY
        stop.set()
        for thread in threads:
            thread.join(60)
        time.sleep(1.0)  # the last fold
        scrape = requests.get(base + "/metrics", timeout=30).text
        master_alive = server.poll() is None
        # what happened under load: the shutdown's own SIGTERMs come after this
        log = Path(log_path).read_text(errors="replace")
    finally:
        stop_process_group(server)
    os.unlink(log_path)
    _report(command, seconds, clients, tally, log, killed, scrape, master_alive)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if requests.get(base + "/periodic-threads-health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def _counter(scrape: str, name: str) -> float:
    for line in scrape.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def _report(command: list[str], seconds: float, clients: int, tally: Tally, log: str,
            killed: set[int], scrape: str, master_alive: bool) -> None:
    print(f"command: python benchmarks/bench_soak.py --seconds {seconds:g} --clients {clients}")
    print(f"server:  {shlex.join(command[2:])}")
    paths = sorted({path for path, _ in tally.answers} | set(tally.errors))
    total = sum(tally.answers.values())
    print(f"\nrequests answered: {total}, connection errors: {sum(tally.errors.values())}")
    print(f"{'endpoint':<28}{'answered':>10}{'5xx':>8}{'conn err':>10}")
    for path in paths:
        answered = sum(n for (p, _), n in tally.answers.items() if p == path)
        fives = sum(n for (p, s), n in tally.answers.items() if p == path and s >= 500)
        print(f"{path:<28}{answered:>10}{fives:>8}{tally.errors[path]:>10}")
    deaths: collections.Counter[str] = collections.Counter()
    for pid, sig in _DEATH.findall(log):
        if not (sig == "SIGKILL" and int(pid) in killed):
            deaths[sig] += 1
    for _pid, code in _EXIT.findall(log):
        deaths[f"exit code {code}"] += 1
    print(f"\nworkers SIGKILLed by this script: {len(killed)}")
    print("other worker deaths: " + (", ".join(f"{k}: {v}" for k, v in sorted(deaths.items()))
                                     or "none"))
    print("master alive at the end: " + ("yes" if master_alive else "no"))
    served = tally.answers[("/work", 200)]
    counted = _counter(scrape, "soak_work_total")
    print(f"\nsoak_work_total on /metrics: {counted:g}; /work answered 200: {served}; "
          f"difference: {counted - served:g} (requests in flight on killed workers: at most "
          f"{tally.errors['/work']})")
    print(f"false health alarms (503 from /periodic-threads-health): {len(tally.alarms)}")
    for body in tally.alarms[:3]:
        print(f"  e.g. {body}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    return run(args.seconds, args.clients)


if __name__ == "__main__":
    sys.exit(main())
else:
    app = create_app() if os.environ.get("COMMON_API_STATE_DIR") else None
