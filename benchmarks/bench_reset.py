"""Resets that answer ok are complete: a 3-worker server, ``POST /metrics/reset`` over and
over, each answer checked against every worker's scrape (issue 9).

``common-api serve --app bench_soak:app --workers 3`` (the soak benchmark's app: a host
counter ``soak_work`` behind ``/work``). Each round sends a few ``/work`` requests, then a
reset; after a reset answered ok, ``/metrics`` is read until every worker has answered and
each must read ``soak_work_total`` 0 (a reset that missed a worker's values leaves them in
every later scrape). Three phases of ``--rounds`` rounds each:

- steady: ``--rounds`` resets with nothing else happening (every 503 here would be a
  false refusal);
- kills: ``--rounds / 10`` resets, each right after a worker is SIGKILLed (the master
  folds its counts meanwhile);
- deletions: ``--rounds / 10`` resets, each right after the state directory is deleted
  (the workers repair it within about half a second; a reset meanwhile must be refused).

Each reset is retried until it answers ok. Printed per phase: how long that took (median
and max), the 503 refusals meanwhile by reason, and ok answers after which some worker did
not read 0, which must be none.

Usage: python benchmarks/bench_reset.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _procs import free_port, stop_process_group

HERE = Path(__file__).resolve().parent
WORKERS = 3
_VALUE = re.compile(r"^soak_work_total (\S+)$", re.MULTILINE)


def get(url: str) -> requests.Response:
    return requests.get(url, headers={"Connection": "close"}, timeout=20)


def wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def readings(base: str) -> dict[int, float]:
    """soak_work_total as each worker's scrape reads it (until every worker answered)."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + 20
    while len(seen) < WORKERS and time.monotonic() < deadline:
        response = get(base + "/metrics")
        if response.status_code != 200:
            continue
        found = _VALUE.search(response.text)
        seen[int(response.headers["X-Worker-Pid"])] = float(found.group(1)) if found else 0.0
    return seen


def workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def reset_until_ok(base: str) -> tuple[float, collections.Counter[str]]:
    """POST /metrics/reset until it answers ok: seconds taken, and the refusals by reason."""
    refused: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    while time.monotonic() - started < 20:
        response = requests.post(base + "/metrics/reset", timeout=20)
        if response.status_code == 200:
            return time.monotonic() - started, refused
        assert response.status_code == 503, response.text
        reason = response.text.split(": ", 1)[1].split(" (")[0].split(", so ")[0]
        refused[re.sub(r"\d+", "N", reason)] += 1
    raise SystemExit("no reset answered ok within 20 s")


def run_phase(base: str, master: int, state: Path, rounds: int, fault: str
              ) -> tuple[list[float], collections.Counter[str], int]:
    """``rounds`` resets, each after ``fault`` (none, a SIGKILL, a deletion): how long each
    took to answer ok, the refusals meanwhile, and ok answers some worker did not read 0."""
    waits: list[float] = []
    refused: collections.Counter[str] = collections.Counter()
    short = 0
    for _ in range(rounds):
        for _ in range(3):
            get(base + "/work")
        if fault == "kills":
            os.kill(workers_of(master)[0], signal.SIGKILL)
        elif fault == "deletions":
            shutil.rmtree(state, ignore_errors=True)
        took, why = reset_until_ok(base)
        waits.append(took)
        refused.update(why)
        if fault == "kills":  # a replacement worker must be up to be read
            wait_for(lambda: len(workers_of(master)) == WORKERS, 20, "3 workers")
        values = readings(base)
        if any(value != 0.0 for value in values.values()) or len(values) < WORKERS:
            short += 1
    return waits, refused, short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-reset-"))
    state = scratch / "state"
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
               COMMON_API_STATE_DIR=str(state))
    command = [sys.executable, "-m", "common_api.cli", "serve", "--app", "bench_soak:app",
               "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    with (scratch / "server.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    print(f"command: python benchmarks/bench_reset.py --rounds {args.rounds}")
    try:
        wait_for(lambda: get(base + "/metrics").status_code == 200, 30, "the server")
        wait_for(lambda: len(readings(base)) == WORKERS, 30, "every worker answering")
        print(f"{'phase':<10} {'resets':>6} {'median ok after':>16} {'max':>8} "
              f"{'refused':>8} {'ok but not 0':>13}  refusals by reason")
        for fault, rounds in (("steady", args.rounds), ("kills", args.rounds // 10),
                              ("deletions", args.rounds // 10)):
            waits, refused, short = run_phase(base, server.pid, state, rounds, fault)
            reasons = "; ".join(f"{count} x {why}" for why, count in refused.most_common())
            print(f"{fault:<10} {len(waits):>6} {statistics.median(waits) * 1000:>13.1f} ms "
                  f"{max(waits) * 1000:>5.0f} ms {sum(refused.values()):>8} {short:>13}  "
                  f"{reasons}")
        print(f"master alive at the end: {'yes' if server.poll() is None else 'no'}")
    finally:
        stop_process_group(server)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
