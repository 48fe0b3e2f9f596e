"""``/threads?scope=all`` under load must never harm a worker (issue 9, part 1).

A 3-worker ``common-api serve`` of the multi-worker test app (``tests/apps/multi_app.py``)
takes wrk load on a trivial host route (``/pid``) while this script asks for N
``scope=all`` dumps (``--callers`` at once, each on a new connection). Printed:

- crashes: gunicorn's log lines for a worker that died of a signal or was replaced, and
  worker pids that changed during the run;
- dumps: answered 200, and how many of them listed every live worker (workers per dump:
  min / median / max);
- wrk's request rate on the host route during the dumps;
- then, with the load still on, one worker SIGSTOPped and one worker holding the GIL in a C
  call (``/block``): is each still listed, and how was it dumped.

Usage: python benchmarks/bench_dumps_under_load.py [--dumps 1000] [--callers 1]
       [--workers 3] [--connections 8] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _procs import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"
HEADER = re.compile(r"^=== Worker (\d+)(?: \(([a-z ]+)\))? ===", re.M)
CRASH = re.compile(r"(was sent SIG\w+|terminated due to signal \d+|Worker exiting|WORKER TIMEOUT)")
BOOT = re.compile(r"Booting worker with pid: (\d+)")


def get(port: str | int, path: str, timeout: float = 30.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return found


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        return children(self.proc.pid)


@contextlib.contextmanager
def server(workers: int, log_dir: Path) -> Iterator[Server]:
    port = free_port()
    log_path = log_dir / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(ROOT)])}
    for name in list(env):
        if name.startswith("COMMON_API_") or name == "PROMETHEUS_MULTIPROC_DIR":
            del env[name]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "common_api.cli", "serve", "--app", "multi_app:app",
             "--workers", str(workers), "--bind", f"127.0.0.1:{port}"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    live = Server(port, proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited:\n{live.log()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get(port, "/pid", 2)[0] == 200 and len(live.workers()) == workers:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready:\n{live.log()}")
            time.sleep(0.2)
        time.sleep(1.0)  # every worker's runtime started (first requests, post_worker_init)
        yield live
    finally:
        stop_process_group(proc)


@dataclass
class Tally:
    answered: int = 0
    failed: list[str] = field(default_factory=list)
    complete: int = 0
    per_dump: list[int] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_dump(live: Server, tally: Tally) -> None:
    before = live.workers()
    try:
        status, body = get(live.port, "/threads?scope=all")
    except (OSError, http.client.HTTPException) as exc:
        with tally.lock:
            tally.failed.append(type(exc).__name__)
        return
    after = live.workers()
    listed = {int(pid) for pid, _ in HEADER.findall(body)}
    with tally.lock:
        if status != 200:
            tally.failed.append(str(status))
            return
        tally.answered += 1
        tally.per_dump.append(len(listed))
        tally.sources.update(source or "none" for _, source in HEADER.findall(body))
        # every worker alive throughout the call must be in the dump
        if before & after <= listed:
            tally.complete += 1


@contextlib.contextmanager
def wrk_load(port: int, connections: int, seconds: int) -> Iterator[list[str]]:
    out: list[str] = []
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/pid"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # wrk prints its summary on SIGINT
        text = proc.communicate(timeout=30)[0].decode()
        out.append(text)


def wrk_rate(text: str) -> str:
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return match.group(1) if match else "?"


def worker_block(body: str, pid: int) -> tuple[str | None, str]:
    for match in HEADER.finditer(body):
        if int(match.group(1)) == pid:
            rest = body[match.end():]
            end = rest.find("\n=== ")
            return match.group(2), rest if end < 0 else rest[:end]
    return None, ""


def frozen_checks(live: Server, tmp: Path) -> list[str]:
    lines = []
    workers = sorted(live.workers())
    stopped, blocked = workers[0], workers[1]
    os.kill(stopped, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, body = get(live.port, "/threads?scope=all")
        source, _ = worker_block(body, stopped)
        lines.append(f"SIGSTOPped worker {stopped}: status {status}, listed as ({source}), "
                     f"{time.monotonic() - started:.2f} s")
    finally:
        os.kill(stopped, signal.SIGCONT)
    marker = tmp / "blocked"

    def block() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            get(live.port, f"/block?s=8&marker={marker}", 30)

    blocker = threading.Thread(target=block, daemon=True)
    blocker.start()
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not marker.exists():
        lines.append("GIL-holding worker: /block never started")
        return lines
    blocked = int(marker.read_text())
    started = time.monotonic()
    status, body = get(live.port, "/threads?scope=all")
    source, block_text = worker_block(body, blocked)
    lines.append(f"GIL-holding worker {blocked}: status {status}, listed as ({source}), "
                 f"stack shows hold_gil: {'hold_gil' in block_text}, "
                 f"{time.monotonic() - started:.2f} s")
    blocker.join(30)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dumps", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="100 dumps")
    args = parser.parse_args()
    dumps = 100 if args.quick else args.dumps
    print("command:", shlex.join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="bench-dumps-") as tmp, \
            server(args.workers, Path(tmp)) as live:
        initial = live.workers()
        tally = Tally()
        started = time.monotonic()
        with wrk_load(live.port, args.connections, 3600) as wrk_out:
            time.sleep(1.0)
            with ThreadPoolExecutor(args.callers) as pool:
                list(pool.map(lambda _: one_dump(live, tally), range(dumps)))
            elapsed = time.monotonic() - started
            frozen = frozen_checks(live, Path(tmp))
            final = live.workers()
        log = live.log()
        crashes = CRASH.findall(log)
        boots = BOOT.findall(log)
        print(f"server: {args.workers} workers (gthread), wrk -t2 -c{args.connections} on /pid")
        print(f"dumps: {dumps} asked ({args.callers} at once), {tally.answered} answered 200, "
              f"{len(tally.failed)} failed {sorted(set(tally.failed))}, {elapsed:.1f} s")
        print(f"dumps listing every live worker: {tally.complete} of {tally.answered}")
        if tally.per_dump:
            print(f"workers per dump: min {min(tally.per_dump)}, median "
                  f"{statistics.median(tally.per_dump):g}, max {max(tally.per_dump)}")
        print(f"worker sections by source: {dict(sorted(tally.sources.items()))}")
        print(f"host route under load: {wrk_rate(wrk_out[0] if wrk_out else '')} req/s")
        print(f"worker crashes (gunicorn log): {len(crashes)} {sorted(set(crashes))}")
        print(f"workers booted after start: {len(boots) - args.workers}; initial pids "
              f"{sorted(initial)}, final {sorted(final)}")
        for line in frozen:
            print(line)


if __name__ == "__main__":
    main()
