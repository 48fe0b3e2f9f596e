"""Level sets on an idle 3-worker server: how long a set takes, and what every worker's
own code sees when it answers (issue 9, part 3).

``common-api serve --workers 3`` serves ``create_app()`` below: the blueprint, a logger
``bench.levels`` whose handler records when its level was set (wall clock), and ``/pid``,
a host route answering that logger's effective level in the worker that takes it.

(a) Latency: SETS level sets (alternating DEBUG and INFO), each on a new connection,
    interleaved with as many level reads (``/loglevel?logger_name=...``, the same HTTP
    path without the set) as the reference. Bar: median and max of the sets under 50 ms.
(b) Read-your-writes: after each set answers, ``/pid`` on fresh connections until every
    worker answered; a worker whose first answer is the old level is a stale read.
    Bar: 0.
(c) Reverts: TIMED sets with ``duration=1``; each worker's handler records when it was put
    back; the lag is that time minus the revert's due time. Figures: median and max.
(d) A stopped worker: one worker SIGSTOPped, a set answers at once and names it; after
    SIGCONT it applies the level.

Usage: python benchmarks/bench_loglevel_set.py [--sets N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from _procs import free_port, stop_process_group

if TYPE_CHECKING:
    from flask import Flask

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem
WORKERS = 3
LOGGER = "bench.levels"
BAR_MS = 50.0
FAN_OUT = 6


def create_app() -> Flask:
    import logging

    from flask import Flask, jsonify

    from common_api import bp

    class RecordingHandler(logging.Handler):
        def __init__(self) -> None:
            self.changes: list[tuple[float, str]] = []
            super().__init__()

        def setLevel(self, level: int | str) -> None:
            super().setLevel(level)
            self.changes.append((time.time(), logging.getLevelName(self.level)))

        def emit(self, record: logging.LogRecord) -> None:
            pass

    logger = logging.getLogger(LOGGER)
    handler = RecordingHandler()
    logger.addHandler(handler)
    logger.propagate = False
    app = Flask("bench_levels")
    app.register_blueprint(bp)

    @app.get("/pid")
    def pid() -> Any:
        return jsonify(pid=os.getpid(), level=logging.getLevelName(logger.getEffectiveLevel()))

    @app.get("/level-history")
    def history() -> Any:
        return jsonify(pid=os.getpid(), changes=handler.changes[-50:])

    return app


def get(base: str, path: str, **params: str) -> requests.Response:
    return requests.get(base + path, params=params, timeout=30,
                        headers={"Connection": "close"})


def first_answers(base: str, path: str, pids: set[int]) -> dict[int, dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(FAN_OUT) as pool:
        while not pids <= set(seen) and time.monotonic() < deadline:
            for response in pool.map(lambda _: get(base, path), range(FAN_OUT)):
                body = response.json()
                seen.setdefault(body["pid"], body)
    return {pid: seen[pid] for pid in pids if pid in seen}


def workers_of(base: str) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    while len(pids) < WORKERS and time.monotonic() < deadline:
        try:
            with ThreadPoolExecutor(FAN_OUT) as pool:
                pids |= {r.json()["pid"] for r in pool.map(lambda _: get(base, "/pid"),
                                                            range(FAN_OUT))}
        except requests.RequestException:  # not listening yet
            time.sleep(0.1)
    if len(pids) < WORKERS:
        raise SystemExit(f"only {len(pids)} workers answered")
    return pids


def timed_ms(call: Any) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    response = call()
    return (time.perf_counter() - started) * 1000, response


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return (f"median {statistics.median(ordered):.1f}  p90 {p90:.1f}  max {ordered[-1]:.1f}"
            f"  (n={len(ordered)})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", type=int, default=50)
    parser.add_argument("--timed", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "common_api.cli", "serve", "--app",
               f"{MODULE}:create_app()", "--workers", str(WORKERS), "--bind",
               f"127.0.0.1:{port}"]
    print("command: python benchmarks/bench_loglevel_set.py " + " ".join(sys.argv[1:]), flush=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
          flush=True)
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        pids: set[int] = set()
        try:
            pids = workers_of(base)
            return run(base, pids, args.sets, args.timed)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            stop_process_group(server)


def stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2:].split()[0] in (b"T", b"t")


def run(base: str, pids: set[int], sets: int, timed: int) -> int:
    set_ms, read_ms, stale, named = [], [], 0, 0
    for n in range(sets):
        level = ("DEBUG", "INFO")[n % 2]
        elapsed, answer = timed_ms(lambda level=level: get(
            base, "/loglevel", logger_name=LOGGER, level=level, format="json"))
        assert answer.status_code == 200, answer.text
        set_ms.append(elapsed)
        named += bool(answer.json().get("unacknowledged_workers", []))
        seen = first_answers(base, "/pid", pids)
        stale += sum(1 for body in seen.values() if body["level"] != level)
        elapsed, _ = timed_ms(lambda: get(base, "/loglevel", logger_name=LOGGER))
        read_ms.append(elapsed)
    print(f"(a) level set, ms:  {summary(set_ms)}")
    print(f"    level read, ms: {summary(read_ms)}  (same HTTP path, no set)")
    ok_latency = statistics.median(set_ms) < BAR_MS and max(set_ms) < BAR_MS
    print(f"    bar: median and max under {BAR_MS:.0f} ms: {'held' if ok_latency else 'NOT held'}")
    print(f"(b) stale host reads after {sets} sets x {len(pids)} workers: {stale}; "
          f"sets naming a worker: {named}")

    lags: list[float] = []
    for _ in range(timed):
        answer = get(base, "/loglevel", logger_name=LOGGER, level="ERROR", duration="1",
                     format="json").json()
        due = datetime.fromisoformat(answer["revert"]["at"]).timestamp()
        back = answer["revert"]["level"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            histories = first_answers(base, "/level-history", pids)
            reverted = {pid: [at for at, lvl in body["changes"] if lvl == back and at > due - 1]
                        for pid, body in histories.items()}
            if len(reverted) == len(pids) and all(reverted.values()):
                lags.extend(times[0] - due for times in reverted.values())
                break
            time.sleep(0.2)
    print(f"(c) revert lag after the due time, ms: "
          f"{summary([lag * 1000 for lag in lags])}")

    frozen = min(pids)
    os.kill(frozen, signal.SIGSTOP)
    try:
        while not stopped(frozen):  # its threads may run a moment more
            time.sleep(0.01)
        elapsed, answer = timed_ms(lambda: get(base, "/loglevel", logger_name=LOGGER,
                                               level="WARNING", format="json"))
        print(f"(d) set with worker {frozen} stopped: {elapsed:.1f} ms, unacknowledged "
              f"{answer.json().get('unacknowledged_workers')}")
    finally:
        os.kill(frozen, signal.SIGCONT)
    resumed = time.monotonic()
    while time.monotonic() - resumed < 10:
        seen = first_answers(base, "/pid", {frozen})
        if seen.get(frozen, {}).get("level") == "WARNING":
            print(f"    worker {frozen} at WARNING {time.monotonic() - resumed:.2f} s after "
                  "SIGCONT (first read that reached it)")
            break
    print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if ok_latency and stale == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
