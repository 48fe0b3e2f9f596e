"""What registering ``common_api.bp`` costs the host's own routes.

Two measurements of one trivial host route (``GET /hello`` answering ``hi``), defined once
in ``create_app`` below and imported by every child process:

1. Instructions per request through Flask's test client, counted by valgrind's callgrind.
   Each variant runs in a fresh ``python`` process under callgrind, once with 100 requests
   and once with 300, with identical setup; (total(300) - total(100)) / 200 cancels the
   start-up cost. Instruction counts hardly move with the machine's load: the bare app's
   repeat exactly; with metrics, the histogram bucket a duration lands in and the
   state-sync thread's ticks follow wall time, so repeats agree within about 1%.
     bare       Flask app, nothing else
     bp         app.register_blueprint(bp), defaults (metrics on)
     exporter   bare app + PrometheusMetrics(app, registry=CollectorRegistry()) (reference)
     bp-mp      as bp, with PROMETHEUS_MULTIPROC_DIR set (prometheus_client multiprocess mode)
     bp-state   as bp, served as gunicorn serves it with the project's config: COMMON_API_STATE_DIR
                set, PROMETHEUS_MULTIPROC_DIR inside it (common_api.gunicorn.prepare_state)
                before the app and its post_worker_init hook after (the issue-3 mechanism)
2. Requests per second of the same route under real gunicorn (2 workers), bare app and app
   with the blueprint started side by side and driven alternately with the same load.

Usage: python benchmarks/bench_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import http.client
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from _procs import free_port, stop_process_group

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ("bare", "bp", "exporter", "bp-mp", "bp-state")
BARRED = ("bp", "bp-mp", "bp-state")
DESCRIPTIONS = {
    "bare": "bare Flask app",
    "bp": "app.register_blueprint(bp), metrics on (default)",
    "exporter": "bare app + PrometheusMetrics(app, registry=CollectorRegistry())",
    "bp-mp": "as bp, PROMETHEUS_MULTIPROC_DIR set (multiprocess mode)",
    "bp-state": "as bp, COMMON_API_STATE_DIR + gunicorn_conf hooks (issue-3 mechanism)",
}
SMALL, LARGE = 100, 300
BAR = 1.10
HASH_SEED = "0"
# where the children import from, ahead of the inherited PYTHONPATH: benchmarks/ (for this
# module) and, once main() has made it, a snapshot of the package sources
CHILD_PATH: list[str] = [str(HERE)]
GUNICORN_CONF = "python:common_api.gunicorn_conf"


# --------------------------------------------------------------------------- the apps


def create_app(variant: str = "bare") -> Flask:
    """The host app of every measurement: one trivial route, plus what ``variant`` adds."""
    from flask import Flask

    app = Flask("bench_host")

    @app.get("/hello")
    def hello() -> str:
        return "hi"

    if variant in ("bp", "bp-mp", "bp-state"):
        from common_api import bp

        app.register_blueprint(bp)
    elif variant == "exporter":
        from prometheus_client import CollectorRegistry
        from prometheus_flask_exporter import PrometheusMetrics

        PrometheusMetrics(app, registry=CollectorRegistry())
    elif variant != "bare":
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return app


def run_child(variant: str, requests: int, verify: bool) -> int:
    """Body of a measured child process: build the app, send ``requests`` requests."""
    if variant == "bp-state":
        # the order of a gunicorn worker: the master prepares the state directory, the worker
        # imports the app, then gunicorn calls the config's post_worker_init hook
        from common_api import gunicorn as hooks

        hooks.prepare_state()
        app = create_app(variant)
        hooks.post_worker_init(None)
    else:
        app = create_app(variant)
    client = app.test_client()
    for _ in range(requests):
        response = client.get("/hello")
        if response.status_code != 200 or response.data != b"hi":
            print(f"unexpected answer: {response.status_code} {response.data!r}",
                  file=sys.stderr)
            return 1
    if verify:
        print(describe_instrumentation(client, requests))
    return 0


def describe_instrumentation(client: FlaskClient, requests: int) -> str:
    """One line that shows whether the host route's requests were recorded, and where."""
    response = client.get("/metrics")
    if response.status_code == 404:
        found = "no /metrics route"
    elif response.status_code != 200:
        found = f"/metrics answered {response.status_code}"
    else:
        lines = [line for line in response.get_data(as_text=True).splitlines()
                 if line.startswith("flask_http_request_total")
                 or (line.startswith("flask_http_request_duration_seconds_count")
                     and "hello" in line)]
        found = "; ".join(lines) if lines else "no flask_http_request_* series"
    mp_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if mp_dir:
        files = sorted(p.name for p in Path(mp_dir).glob("*.db"))
        found += f" | multiprocess dir holds {len(files)} .db file(s): {', '.join(files)}"
    others = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    found += f" | other threads: {', '.join(others) or 'none'}"
    package = sys.modules.get("common_api")
    if package is not None and package.__file__:
        found += f" | common_api from {Path(package.__file__).parent}"
    return f"after {requests} requests: {found}"


# --------------------------------------------------------------------------- helpers


def base_env() -> dict[str, str]:
    """The children's environment: identical for every variant and independent of the
    caller's COMMON_API_* / multiprocess settings."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_")
           and key.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONHASHSEED"] = HASH_SEED
    env["PYTHONPATH"] = os.pathsep.join(
        [*CHILD_PATH, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def shown_env(env: dict[str, str]) -> str:
    keys = ("PYTHONHASHSEED", "PYTHONPATH", "COMMON_API_STATE_DIR", "PROMETHEUS_MULTIPROC_DIR")
    return " ".join(f"{key}={shlex.quote(env[key])}" for key in keys if key in env)


def variant_env(variant: str, stack: contextlib.ExitStack) -> dict[str, str]:
    """The environment of one child of ``variant``; fresh directories are removed when
    ``stack`` closes. Only bp-mp and bp-state differ from the common base."""
    env = base_env()
    if variant in ("bp-mp", "bp-state"):
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-mp-")))
        if variant == "bp-mp":
            env["PROMETHEUS_MULTIPROC_DIR"] = str(root)
        else:
            # the layout of docs/multiworker.md: metrics files in <state dir>/prometheus
            (root / "prometheus").mkdir()
            env["COMMON_API_STATE_DIR"] = str(root)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "prometheus")
    return env


def package_digest(root: Path = ROOT) -> str:
    """Digest of the package sources under ``root``."""
    digest = hashlib.sha256()
    for path in sorted((root / "common_api").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_sources(stack: contextlib.ExitStack) -> Path | None:
    """Copy ``common_api/`` to a temporary directory that every child imports first, so
    that all runs measure the same code even while the working tree is being edited."""
    if not (ROOT / "common_api" / "__init__.py").is_file():
        return None
    target = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-src-")))
    shutil.copytree(ROOT / "common_api", target / "common_api",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    CHILD_PATH.append(str(target))
    return target


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# --------------------------------------------------------------------------- callgrind


@dataclass
class CallgrindRun:
    variant: str
    requests: int
    command: str
    instructions: int | None = None
    error: str = ""


@dataclass
class VariantResult:
    variant: str
    per_request: list[float] = field(default_factory=list)
    runs: list[CallgrindRun] = field(default_factory=list)
    verification: str = ""

    @property
    def value(self) -> float | None:
        return statistics.fmean(self.per_request) if self.per_request else None


COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def callgrind_run(valgrind: str, variant: str, requests: int) -> CallgrindRun:
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
            "--trace-children=no", sys.executable, str(Path(__file__).resolve()),
            "--child", variant, "--requests", str(requests)]
    with contextlib.ExitStack() as stack:
        env = variant_env(variant, stack)
        run = CallgrindRun(variant, requests, f"env {shown_env(env)} {shlex.join(argv)}")
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600,
                                  check=False)
        except subprocess.TimeoutExpired:
            run.error = "timed out after 600 s"
            return run
    match = COLLECTED.search(done.stderr)
    if done.returncode != 0 or match is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        run.error = f"exit {done.returncode}: {tail}"
    else:
        run.instructions = int(match.group(1))
    return run


def verify_variant(variant: str) -> str:
    """Run the variant once without valgrind: checks it works, says what it records and
    writes the bytecode caches (unless PYTHONDONTWRITEBYTECODE is set) before the measured
    runs, so that every measured run of a variant starts alike."""
    with contextlib.ExitStack() as stack:
        env = variant_env(variant, stack)
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", variant,
                "--requests", "3", "--verify"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    if done.returncode != 0:
        return "FAILED: " + " | ".join(done.stderr.strip().splitlines()[-3:])
    return done.stdout.strip()


def measure_instructions(valgrind: str, repeats: int, jobs: int
                         ) -> dict[str, VariantResult]:
    results = {variant: VariantResult(variant) for variant in VARIANTS}
    for variant in VARIANTS:
        results[variant].verification = verify_variant(variant)
    plan = [(variant, repeat, requests) for repeat in range(repeats) for variant in VARIANTS
            for requests in (SMALL, LARGE)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(callgrind_run, valgrind, variant, requests)
                   for variant, _, requests in plan]
        runs = [future.result() for future in futures]
    for index in range(0, len(runs), 2):
        small, large = runs[index], runs[index + 1]
        result = results[small.variant]
        result.runs += [small, large]
        if small.instructions is not None and large.instructions is not None:
            result.per_request.append((large.instructions - small.instructions)
                                      / (LARGE - SMALL))
    return results


# --------------------------------------------------------------------------- gunicorn


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    name: str
    port: int
    command: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 10) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def worker_class(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "unknown"
        match = re.search(r"Using worker: (\S+)", text)
        return match.group(1) if match else "unknown"


def start_server(name: str, variant: str, conf: str, log_dir: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn"]
    if conf:
        argv += ["-c", conf]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread",
             "--threads", "4", "--no-control-socket", "--log-level", "info",
             f'bench_overhead:create_app("{variant}")']
    env = base_env()
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   cwd=str(ROOT))
    return Server(name, port, f"env {shown_env(env)} {shlex.join(argv)}", process, log_path)


def wait_ready(server: Server, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} server exited early:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            if http_get(server.port, "/hello") == (200, b"hi"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} server not ready in {deadline_s} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    stop_process_group(server.process)


@contextlib.contextmanager
def servers(conf: str) -> Iterator[tuple[Server, Server]]:
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as log_dir:
        started: list[Server] = []
        try:
            for name, variant in (("bare", "bare"), ("bp", "bp")):
                started.append(start_server(name, variant, conf, Path(log_dir)))
            for server in started:
                wait_ready(server)
            yield started[0], started[1]
        finally:
            for server in started:
                stop_server(server)


WRK_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")
WRK_TOTAL = re.compile(r"(\d+) requests in ")
WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)|Socket errors:.*")


@dataclass
class LoadSpec:
    seconds: float
    threads: int
    connections: int

    def wrk_argv(self, wrk: str, port: int) -> list[str]:
        return [wrk, f"-t{self.threads}", f"-c{self.connections}", f"-d{self.seconds:g}s",
                f"http://127.0.0.1:{port}/hello"]


@dataclass
class Drive:
    rps: float
    completed: int
    note: str = ""


def drive_wrk(wrk: str, spec: LoadSpec, port: int) -> Drive:
    done = subprocess.run(spec.wrk_argv(wrk, port), capture_output=True, text=True,
                          timeout=spec.seconds + 30, check=False)
    match = WRK_RPS.search(done.stdout)
    total = WRK_TOTAL.search(done.stdout)
    if done.returncode != 0 or match is None or total is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    errors = WRK_ERRORS.search(done.stdout)
    return Drive(float(match.group(1)), int(total.group(1)), errors.group(0) if errors else "")


def drive_python(spec: LoadSpec, port: int) -> Drive:
    """Fallback load generator: keep-alive http.client connections in a few threads."""
    counts = [0] * spec.connections
    failures = [0] * spec.connections
    deadline = time.monotonic() + spec.seconds

    def loop(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            while time.monotonic() < deadline:
                try:
                    conn.request("GET", "/hello")
                    response = conn.getresponse()
                    body = response.read()
                    if response.status == 200 and body == b"hi":
                        counts[slot] += 1
                    else:
                        failures[slot] += 1
                except (OSError, http.client.HTTPException):
                    failures[slot] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        finally:
            conn.close()

    started = time.monotonic()
    workers = [threading.Thread(target=loop, args=(slot,)) for slot in range(spec.connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    failed = sum(failures)
    return Drive(sum(counts) / elapsed, sum(counts) + failed,
                 f"{failed} failed requests" if failed else "")


@dataclass
class ThroughputResult:
    rps: dict[str, list[float]]
    notes: list[str]
    commands: list[str]
    worker_class: str
    load_command: str


HELLO_SERIES = re.compile(r'^flask_http_request_total\{[^}]*endpoint="hello"[^}]*\}\s+(\S+)',
                          re.MULTILINE)


def scrape_hello_count(port: int) -> float | None:
    """The blueprint's request counter of the host route, as one scrape reports it."""
    status, body = http_get(port, "/metrics", timeout=10)
    if status != 200:
        return None
    values = [float(value) for value in HELLO_SERIES.findall(body.decode(errors="replace"))]
    return sum(values) if values else None


def measure_throughput(rounds: int, spec: LoadSpec, conf: str, use_wrk: bool
                       ) -> ThroughputResult:
    wrk = shutil.which("wrk") if use_wrk else None
    rps: dict[str, list[float]] = {"bare": [], "bp": []}
    notes: list[str] = []
    with servers(conf) as (bare, with_bp):
        by_name = {"bare": bare, "bp": with_bp}
        notes.append(f"GET /metrics: bp server {http_get(with_bp.port, '/metrics', 10)[0]}, "
                     f"bare server {http_get(bare.port, '/metrics')[0]}")
        sent = {"bare": 1, "bp": 1}  # the readiness probe's answered request

        def drive(name: str, seconds: float) -> Drive:
            load = LoadSpec(seconds, spec.threads, spec.connections)
            port = by_name[name].port
            result = drive_wrk(wrk, load, port) if wrk else drive_python(load, port)
            sent[name] += result.completed
            return result

        for name in ("bare", "bp"):  # warm-up, not counted
            drive(name, 1.0)
        for index in range(rounds):
            order = ("bare", "bp") if index % 2 == 0 else ("bp", "bare")
            for name in order:
                result = drive(name, spec.seconds)
                rps[name].append(result.rps)
                if result.note:
                    notes.append(f"round {index + 1} {name}: {result.note}")
        scrapes = [scrape_hello_count(with_bp.port) for _ in range(4)]
        shown = ", ".join("none" if value is None else f"{value:,.0f}" for value in scrapes)
        notes.append(f"bp server: 4 scrapes of flask_http_request_total{{endpoint=\"hello\"}} "
                     f"read {shown}; the load generator saw {sent['bp']:,} answers (a count "
                     f"summed over both workers reads that, plus up to {spec.connections} "
                     f"in flight per load run; one worker's count reads about half)")
        worker_class = bare.worker_class()
        commands = [bare.command, with_bp.command]
        if wrk:
            commands += [shlex.join(spec.wrk_argv(wrk, server.port)) for server in (bare, with_bp)]
            load_command = tool_version([wrk, "--version"])
        else:
            load_command = (f"built-in: {spec.connections} threads, each with one keep-alive "
                            f"http.client connection, GET /hello for {spec.seconds:g} s")
    return ThroughputResult(rps, notes, commands, worker_class, load_command)


# --------------------------------------------------------------------------- report


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "n/a"
    return f"{value / base:.3f}x"


def report_instructions(results: dict[str, VariantResult]) -> None:
    base = results["bare"].value
    print("\n== 1. Instructions per request of GET /hello (Flask test client, callgrind) ==")
    print(f"per request = (Collected(N={LARGE}) - Collected(N={SMALL})) / {LARGE - SMALL}\n")
    print(f"{'variant':<9} {'instr/request (each run)':<32} {'vs bare':>8}  what")
    for variant in VARIANTS:
        result = results[variant]
        each = ", ".join(f"{value:,.0f}" for value in result.per_request) or "FAILED"
        print(f"{variant:<9} {each:<32} {ratio(result.value, base):>8}  "
              f"{DESCRIPTIONS[variant]}")
    print("\nraw totals:")
    for variant in VARIANTS:
        for run in results[variant].runs:
            shown = f"{run.instructions:,}" if run.instructions is not None else run.error
            print(f"  {variant:<9} N={run.requests:<4} Collected : {shown}")
    print("\nwhat each variant records (one run of 3 requests, no valgrind):")
    for variant in VARIANTS:
        print(f"  {variant:<9} {results[variant].verification}")
    print("\nratios:")
    for letter, variant in zip("bcde", VARIANTS[1:], strict=True):
        value = results[variant].value
        verdict = ""
        if variant in BARRED and value is not None and base:
            verdict = f"  (bar <= {BAR:.2f}: " + ("PASS)" if value / base <= BAR else "FAIL)")
        label = f"{letter}/a  {variant}/bare"
        print(f"  {label:<20} {ratio(value, base)}{verdict}")
    print("\ncommands (one per variant and N; the directories named in them are fresh and "
          "empty, made per run):")
    seen: set[tuple[str, int]] = set()
    for variant in VARIANTS:
        for run in results[variant].runs:
            if (run.variant, run.requests) not in seen:
                seen.add((run.variant, run.requests))
                print(f"  {run.command}")


def report_throughput(result: ThroughputResult, rounds: int, seconds: float, conf: str
                      ) -> None:
    print(f"\n== 2. Requests/s of GET /hello under gunicorn, 2 workers "
          f"({result.worker_class} worker, 4 threads), {rounds} alternating rounds of "
          f"{seconds:g} s ==")
    if conf:
        print(f"both servers load -c {conf} (each its own fresh COMMON_API_STATE_DIR, "
              "so the bp server runs with multiprocess metrics and the worker runtime)")
    print()
    medians: dict[str, float] = {}
    for name in ("bare", "bp"):
        values = result.rps[name]
        medians[name] = statistics.median(values)
        rounds_text = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:<5} median {medians[name]:>9,.0f} rps   rounds: {rounds_text}")
    paired = statistics.median(bare / bp for bare, bp in
                               zip(result.rps["bare"], result.rps["bp"], strict=True))
    print(f"\nratio of medians bare/bp: {medians['bare'] / medians['bp']:.3f}x "
          f"(bp serves {medians['bp'] / medians['bare']:.3f} of bare's requests/s); "
          f"median of the per-round ratios bare/bp: {paired:.3f}x")
    for note in result.notes:
        print(f"note: {note}")
    print("\ncommands (servers started side by side, each on its own free loopback port):")
    for command in result.commands:
        print(f"  {command}")
    print(f"  load: {result.load_command}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="one callgrind run per variant, 3 short gunicorn rounds")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="callgrind runs in parallel (counts do not depend on it)")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--skip-gunicorn", action="store_true")
    parser.add_argument("--no-wrk", action="store_true",
                        help="use the built-in Python load generator even if wrk is present")
    parser.add_argument("--gunicorn-conf", default=GUNICORN_CONF,
                        help=f"gunicorn -c value for both servers ('' for none; "
                             f"default {GUNICORN_CONF})")
    parser.add_argument("--live-sources", action="store_true",
                        help="import common_api as installed instead of a copy taken at start")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if a blueprint variant exceeds {BAR:.2f}x bare")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=SMALL, help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child, args.requests, args.verify)
    with contextlib.ExitStack() as stack:
        return run_benchmarks(args, stack)


def run_benchmarks(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    started = time.monotonic()
    snapshot = None if args.live_sources else snapshot_sources(stack)
    digest = package_digest(snapshot) if snapshot else package_digest()
    print(f"python {sys.version.split()[0]} ({sys.executable}); flask "
          f"{version_of('flask')}, werkzeug {version_of('werkzeug')}, gunicorn "
          f"{version_of('gunicorn')}, prometheus_client {version_of('prometheus_client')}, "
          f"prometheus-flask-exporter {version_of('prometheus-flask-exporter')}, "
          f"common-api {version_of('common-api')}")
    if snapshot:
        print(f"measured sources: a copy of {ROOT / 'common_api'} taken at start (digest "
              f"{digest}) in {snapshot}, first on the children's PYTHONPATH")
    else:
        print(f"measured sources: the installed common_api (working tree digest {digest})")
    print("children: PYTHONHASHSEED=0, benchmarks/ on PYTHONPATH, COMMON_API_* and "
          "PROMETHEUS_MULTIPROC_DIR removed from the inherited environment")
    failed = False
    over_bar = False

    if not args.skip_callgrind:
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            print("\nvalgrind not found: instruction counts skipped")
            failed = True
        else:
            print(f"{tool_version([valgrind, '--version'])}, {args.jobs} run(s) in parallel")
            results = measure_instructions(valgrind, 1 if args.quick else 2, max(1, args.jobs))
            report_instructions(results)
            base = results["bare"].value
            for variant in VARIANTS:
                failed |= results[variant].value is None
            for variant in BARRED:
                value = results[variant].value
                over_bar |= bool(value and base and value / base > BAR)

    if not args.skip_gunicorn:
        load1, load5, _ = os.getloadavg()
        print(f"\n(machine: {os.cpu_count()} CPUs, load average {load1:.2f} / {load5:.2f} "
              "before the gunicorn part; requests/s move with other load, instructions do not)")
        rounds, seconds = (3, 2.0) if args.quick else (5, 3.0)
        spec = LoadSpec(seconds, threads=2, connections=8)
        try:
            throughput = measure_throughput(rounds, spec, args.gunicorn_conf, not args.no_wrk)
            report_throughput(throughput, rounds, seconds, args.gunicorn_conf)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"\ngunicorn measurement failed: {exc}")
            failed = True

    if snapshot and package_digest() != digest:
        print(f"\nnote: the working tree's common_api changed while the benchmark ran (now "
              f"{package_digest()}); the figures above are of the copy {digest}")
    print(f"\ntotal time: {time.monotonic() - started:.0f} s")
    if failed:
        return 1
    return 1 if args.check and over_bar else 0


if __name__ == "__main__":
    sys.exit(main())
