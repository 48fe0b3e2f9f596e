"""``/metrics`` of a multi-worker server: cost against prometheus_client's own exposition,
and under worker churn (issue 3, acceptance 2 and 3; issue 17, acceptance 4).

(a) Scrape latency at 1, 2, 4, 8 and 16 workers. ``common-api serve --workers N`` serves
    ``create_app()`` below, whose metric objects come to about 2,000 series per worker (no
    callbacks); each worker creates and increments every series at import, so the state
    directory holds N workers' files. The reference is prometheus_client's documented
    multiprocess exposition (a fresh ``CollectorRegistry`` with ``MultiProcessCollector``
    over that same directory, ``generate_latest``) as a WSGI app (``reference_app`` below),
    served by the same gunicorn (N gthread workers) so both sides pay the same HTTP stack.
    Both are scraped by the same client, a new connection per scrape, in interleaved rounds
    (the order alternates each round). Bar: ratio of medians (common_api / reference) at
    most 1.25 at every N. common_api's scrape includes the live part (every other worker
    asked over the peer channel); ``/bench/live`` times that part alone inside a worker,
    reported as the live part's added latency.

(b) Worker churn. The same app under plain gunicorn with the project's config module and
    ``--max-requests`` small, so gunicorn recycles its workers at least 30 times while a
    known number of increments is sent. Then: the increment counter and every series the
    workers created at import read exactly what was sent (each booted worker adds 1 to each
    series), the number of ``.db`` files stays bounded, and ``/metrics`` latency of that
    server is compared with a freshly started server with the same command, scraped the
    same way in interleaved rounds (both keep recycling at the same pace while scraped).
    Bar: ratio of medians at most 1.3.

(c) The per-request cost of the mechanism on host routes (multiprocess metrics on) is
    measured by ``benchmarks/bench_overhead.py`` (variants bp-mp and bp-state), not here.

    With ``--before DIR`` (a checkout of an earlier commit, e.g. ``git worktree add DIR
    a75ee23``), the same server run from it is scraped in the same rounds, so the cost of
    what changed is read from one run on this shared machine, not from two.

Usage: python benchmarks/bench_metrics_scrape.py [--quick] [--part a|b|all]
                                                 [--workers 1,2,4,8,16] [--before DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _procs import free_port, stop_process_group

if TYPE_CHECKING:
    from flask import Flask

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem
GUNICORN_CONF = "python:common_api.gunicorn_conf"
WORKERS = 3  # part (b)
SCRAPE_WORKERS = (1, 2, 4, 8, 16)  # part (a)
SCRAPE_BAR = 1.25
CHURN_BAR = 1.3
MIN_RECYCLES = 30

# the bench app's series: (labels per metric); about 2,000 samples with the blueprint's own
ITEMS = 1000  # counter bench_items{item}
ROUTES = 30  # histogram bench_latency_seconds{route}: 15 buckets + _count + _sum each
QUEUES = 200  # gauge bench_queue_depth{queue}, livesum
POOLS = 100  # gauge bench_peak_bytes{pool}, max
KINDS = 60  # summary bench_payload_bytes{kind}: _count + _sum each
READY_LINE = "bench app ready in"  # printed by each worker once its series exist
BOOT_LINE = "Booting worker with pid"  # gunicorn's, printed by each new worker


# --------------------------------------------------------------------------- the apps


def create_app() -> Flask:
    """The measured component: the blueprint plus about 2,000 series, all set at import."""
    from flask import Flask, jsonify
    from prometheus_client import Counter, Gauge, Histogram, Summary

    from common_api import bp

    items = Counter("bench_items", "Items handled, by item", ["item"])
    latency = Histogram("bench_latency_seconds", "Route latency", ["route"])
    queues = Gauge("bench_queue_depth", "Queue depth", ["queue"], multiprocess_mode="livesum")
    peaks = Gauge("bench_peak_bytes", "Peak pool size", ["pool"], multiprocess_mode="max")
    payloads = Summary("bench_payload_bytes", "Payload sizes", ["kind"])
    churn = Counter("bench_churn", "Increments sent through /bench/inc")
    for n in range(ITEMS):
        items.labels(str(n)).inc()
    for n in range(ROUTES):
        latency.labels(f"/route/{n}").observe(0.003 * (n + 1))
    for n in range(QUEUES):
        queues.labels(f"q{n}").set(n % 7)
    for n in range(POOLS):
        peaks.labels(f"pool{n}").set(1024 * n)
    for n in range(KINDS):
        payloads.labels(f"kind{n}").observe(100 + n)

    app = Flask("bench_metrics_scrape")
    app.register_blueprint(bp)

    @app.get("/bench/state")
    def state() -> Any:
        return jsonify(pid=os.getpid(), prometheus=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

    @app.get("/bench/live")
    def live() -> Any:
        """How long this worker takes to gather every worker's live part (ms, 20 runs)."""
        runtime = app.extensions["common_api"].coordination.runtime
        if not hasattr(runtime, "gather_live_metrics"):  # a checkout without a live part
            return jsonify(median_ms=0.0, workers=0, missing=0)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            gathered = runtime.gather_live_metrics(1.0)
            times.append((time.perf_counter() - started) * 1000)
        return jsonify(median_ms=statistics.median(times), workers=len(gathered.reports),
                       missing=len(gathered.missing))

    @app.get("/bench/inc")
    def inc() -> Any:
        churn.inc()
        return jsonify(pid=os.getpid())

    print(f"{READY_LINE} {os.getpid()}", file=sys.stderr, flush=True)
    return app


def reference_app(environ: dict[str, Any], start_response: Callable[..., Any]
                  ) -> Iterable[bytes]:
    """prometheus_client's own multiprocess exposition (its documented gunicorn recipe)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    data = generate_latest(registry)
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                              ("Content-Length", str(len(data)))])
    return [data]


# --------------------------------------------------------------------------- servers


def http_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def timed_get(port: int, path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, _, body = http_get(port, path)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"GET {path} on port {port} answered {status}")
    return elapsed, body


def base_env() -> dict[str, str]:
    """The servers' environment: no COMMON_API_* or multiprocess setting of the caller."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_") and key.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def shown_env(env: dict[str, str]) -> str:
    keys = ("PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")
    return " ".join(f"{key}={shlex.quote(env[key])}" for key in keys if key in env)


@dataclass
class Server:
    name: str
    port: int
    command: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def stop(self) -> None:
        stop_process_group(self.process, timeout=20)


class Servers:
    """Starts servers in their own process groups; ``close`` stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Server] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Server:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       cwd=str(HERE.parent))
        port = int(argv[argv.index("--bind") + 1].rsplit(":", 1)[1])
        server = Server(name, port, f"env {shown_env(env)} {shlex.join(argv)}", process,
                        log_path)
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.stop()


@contextlib.contextmanager
def server_group() -> Iterator[Servers]:
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as log_dir:
        group = Servers(Path(log_dir))
        try:
            yield group
        finally:
            group.close()


def serve_argv(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "common_api.cli", "serve", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--app", f"{MODULE}:create_app()"]


def reference_argv(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", "4",
            "--no-control-socket", f"{MODULE}:reference_app"]


def churn_argv(port: int, max_requests: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF,
            "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
            "--max-requests", str(max_requests), "--max-requests-jitter", "0",
            f"{MODULE}:create_app()"]


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             server: Server | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            tail = server.log()[-3000:] if server is not None else ""
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(0.1)


def prometheus_dir(server: Server) -> Path:
    status, _, body = http_get(server.port, "/bench/state")
    if status != 200:
        raise RuntimeError(f"/bench/state answered {status}")
    return Path(json.loads(body)["prometheus"])


def wait_workers_ready(server: Server, directory: Path, timeout: float = 60.0,
                       workers: int = WORKERS) -> None:
    """Every worker answers and has written its series (one bench counter file each)."""

    def ready() -> bool:
        status, _, _ = http_get(server.port, "/metrics")
        live = [p for p in directory.glob("counter_*.db") if not p.name.endswith("archive.db")]
        return status == 200 and len(live) >= workers and quiet(server)

    wait_for(ready, timeout, f"{workers} workers of {server.name}", server)


# --------------------------------------------------------------------------- measuring


def parse(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def bench_only(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
               ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: value for key, value in samples.items()
            if key[0].startswith("bench_") and not key[0].startswith("bench_churn")}


@dataclass
class Comparison:
    names: tuple[str, str]
    samples: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, name: str) -> float:
        return statistics.median(self.samples[name]) * 1000

    def quartiles_ms(self, name: str) -> tuple[float, float]:
        q = statistics.quantiles(self.samples[name], n=4)
        return q[0] * 1000, q[2] * 1000

    @property
    def ratio(self) -> float:
        first, second = self.names
        return self.median_ms(first) / self.median_ms(second)

    def lines(self) -> list[str]:
        out = []
        for name in self.names:
            low, high = self.quartiles_ms(name)
            out.append(f"  {name:<34} median {self.median_ms(name):8.2f} ms   "
                       f"IQR {low:7.2f}-{high:7.2f} ms   n={len(self.samples[name])}")
        return out


def interleaved(ports: dict[str, int], samples: int, warmup: int,
                path: str = "/metrics") -> Comparison:
    """Scrape the servers alternately, one scrape each at a time, in A B B A order
    (which cancels a linear drift of the machine's speed); the ratio is of the first two."""
    names = tuple(ports)
    assert len(names) >= 2
    comparison = Comparison((names[0], names[1]), {name: [] for name in names})
    for number in range(warmup + samples):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            elapsed = timed_get(ports[name], path)[0]
            if number >= warmup:
                comparison.samples[name].append(elapsed)
    return comparison


def quiet(server: Server) -> bool:
    """No worker of ``server`` is between its boot and the end of its app import."""
    log = server.log()
    return log.count(BOOT_LINE) == log.count(READY_LINE)


def between_recycles(servers: dict[str, Server], samples: int, warmup: int) -> Comparison:
    """Scrape the servers alternately, each scrape taken while neither is booting a worker,
    so that what differs is the servers' state, not a boot competing for the CPU."""
    names = tuple(servers)
    assert len(names) == 2
    comparison = Comparison((names[0], names[1]), {name: [] for name in names})

    def all_quiet() -> bool:
        return all(quiet(server) for server in servers.values())

    for number in range(warmup + samples):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            wait_for(all_quiet, 60, "no worker booting", servers[name])
            elapsed = timed_get(servers[name].port, "/metrics")[0]
            if number >= warmup:
                comparison.samples[name].append(elapsed)
    return comparison


# --------------------------------------------------------------------------- part (a)


@dataclass
class Settings:
    samples: int  # scrapes per server in (a)
    warmup: int
    churn_increments: int
    max_requests: int
    churn_samples: int  # scrapes per server in (b); keep it below the fresh server's
    # max_requests x WORKERS so that the fresh server stays close to fresh


@dataclass
class ScrapeResult:
    workers: int
    comparison: Comparison
    same: bool
    live_ms: float
    live_workers: int

    @property
    def before_ratio(self) -> float | None:
        """The other checkout's median over the reference's, when one was scraped too."""
        if BEFORE not in self.comparison.samples:
            return None
        return (self.comparison.median_ms(BEFORE)
                / self.comparison.median_ms(self.comparison.names[1]))


BEFORE = "before GET /metrics"


def start_ready(group: Servers, name: str, workers: int, env: dict[str, str]) -> Server:
    server = group.start(name, serve_argv(free_port(), workers), env)
    wait_for(lambda: http_get(server.port, "/bench/state")[0] == 200, 120,
             "common-api serve", server)
    wait_workers_ready(server, prometheus_dir(server), 180, workers)
    return server


def scrape_at(settings: Settings, workers: int, before: Path | None = None) -> ScrapeResult:
    """Part (a) at ``workers`` workers: the servers started, compared, stopped; with
    ``before`` (another checkout of common_api), a third server run from it is scraped in
    the same rounds."""
    with server_group() as group:
        env = base_env()
        ours = start_ready(group, f"common_api-{workers}", workers, env)
        directory = prometheus_dir(ours)
        ref_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        reference = group.start(f"reference-{workers}", reference_argv(free_port(), workers),
                                ref_env)
        wait_for(lambda: http_get(reference.port, "/metrics")[0] == 200, 120,
                 "reference server", reference)

        ours_body, ref_body = timed_get(ours.port, "/metrics")[1], timed_get(
            reference.port, "/metrics")[1]
        ours_samples, ref_samples = parse(ours_body), parse(ref_body)
        same = bench_only(ours_samples) == bench_only(ref_samples)
        files = sum(1 for _ in directory.glob("*.db"))
        print(f"  {workers:2d} workers: {files} .db files, samples per scrape common_api "
              f"{len(ours_samples)} ({len(bench_only(ours_samples))} bench_*), reference "
              f"{len(ref_samples)}; bench_* values identical: {same}; body bytes "
              f"{len(ours_body)} vs {len(ref_body)}")
        ports = {"common_api GET /metrics": ours.port, "reference GET /metrics": reference.port}
        if before is not None:
            before_env = {**env, "PYTHONPATH": os.pathsep.join([str(before), env["PYTHONPATH"]])}
            ports[BEFORE] = start_ready(group, f"before-{workers}", workers, before_env).port
        comparison = interleaved(ports, settings.samples, settings.warmup)
        live = json.loads(http_get(ours.port, "/bench/live")[2])
        if workers == SCRAPE_WORKERS[-1] or workers == 1:
            print(f"     common_api server: {ours.command}")
            print(f"     reference server:  {reference.command}")
    return ScrapeResult(workers, comparison, same, float(live["median_ms"]),
                        int(live["workers"]))


def part_a(settings: Settings, sizes: tuple[int, ...] = SCRAPE_WORKERS,
           before: Path | None = None) -> bool:
    print(f"(a) /metrics with {', '.join(map(str, sizes))} workers and ~2,000 series per "
          "worker vs prometheus_client's own multiprocess exposition of the same directory"
          + (f"; 'before': the same server run from {before}" if before else ""))
    results = [scrape_at(settings, workers, before) for workers in sizes]
    print(f"\n  {'workers':>7}  {'common_api ms':>13}  {'reference ms':>12}  {'ratio':>6}  "
          f"{'live part ms':>12}  {'before ratio':>12}  bar <= {SCRAPE_BAR}")
    ok = True
    for result in results:
        first, second = result.comparison.names
        passed = result.comparison.ratio <= SCRAPE_BAR and result.same
        ok = ok and passed
        print(f"  {result.workers:7d}  {result.comparison.median_ms(first):13.2f}  "
              f"{result.comparison.median_ms(second):12.2f}  {result.comparison.ratio:6.3f}  "
              f"{result.live_ms:12.2f}  "
              f"{'' if result.before_ratio is None else f'{result.before_ratio:.3f}':>12}  "
              f"{'PASS' if passed else 'FAIL'}")
    print(f"  medians of {settings.samples} scrapes per server and size (after "
          f"{settings.warmup} warm-up scrapes each), alternating one by one in A B B A order, "
          "a new connection per scrape, same client; 'live part' = median time one worker "
          "takes to gather every worker's live part over the peer channel (/bench/live, 20 "
          "runs), included in common_api's figure")
    return ok


# --------------------------------------------------------------------------- part (b)


def db_files(directory: Path) -> int:
    return sum(1 for _ in directory.glob("*.db"))


RAW_REPEATS = 21


def raw_exposition_ms(directory: Path) -> float:
    """prometheus_client's own exposition of ``directory`` in this process (no HTTP)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    times = []
    for _ in range(RAW_REPEATS):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
        started = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def file_breakdown(directory: Path) -> tuple[int, int, int]:
    """(.db files, archives among them, distinct worker pids owning the others)."""
    names = [path.name for path in directory.glob("*.db")]
    archives = sum(1 for name in names if name.endswith("_archive.db"))
    owners = {name.rsplit("_", 1)[1] for name in names if not name.endswith("_archive.db")}
    return len(names), archives, len(owners)


def part_b(settings: Settings) -> bool:
    print(f"\n(b) worker churn: --max-requests {settings.max_requests}, at least "
          f"{MIN_RECYCLES} recycles, then exact totals and /metrics latency vs a fresh server")
    with server_group() as group:
        env = base_env()
        churned = group.start("churned", churn_argv(free_port(), settings.max_requests), env)
        wait_for(lambda: http_get(churned.port, "/bench/state")[0] == 200, 60,
                 "churned server", churned)
        directory = prometheus_dir(churned)
        wait_workers_ready(churned, directory)

        sent = errors = 0
        pids: set[int] = set()
        max_files = 0
        started = time.monotonic()
        recycles = 0
        while sent < settings.churn_increments or recycles < MIN_RECYCLES:
            try:
                status, _, body = http_get(churned.port, "/bench/inc")
            except (OSError, http.client.HTTPException):
                errors += 1
                continue
            if status != 200:
                errors += 1
                continue
            sent += 1
            pids.add(json.loads(body)["pid"])
            if sent % 25 == 0:
                max_files = max(max_files, db_files(directory))
                recycles = churned.count(r"Autorestarting worker")
            if time.monotonic() - started > 240:
                raise RuntimeError("churn took longer than 240 s")
        churn_seconds = time.monotonic() - started

        # the same command without recycling (gunicorn's --max-requests 0), so that it stays
        # fresh however many scrapes it answers
        fresh = group.start("fresh", churn_argv(free_port(), 0), env)
        wait_for(lambda: http_get(fresh.port, "/bench/state")[0] == 200, 60,
                 "fresh server", fresh)
        fresh_directory = prometheus_dir(fresh)
        wait_workers_ready(fresh, fresh_directory)
        wait_for(lambda: quiet(fresh), 60, "the fresh server's workers", fresh)
        # what one worker of the bench app writes: the fold keeps the directory at one set
        # per live worker (one more while a replacement boots) plus one archive per kind
        per_worker = db_files(fresh_directory) // WORKERS
        bound = (WORKERS + 1) * per_worker + per_worker

        recycles_before = churned.count("Autorestarting worker"), fresh.count(
            "Autorestarting worker")
        comparison = between_recycles({"churned GET /metrics": churned,
                                       "fresh GET /metrics": fresh},
                                      settings.churn_samples, settings.warmup)
        during = (churned.count("Autorestarting worker") - recycles_before[0],
                  fresh.count("Autorestarting worker") - recycles_before[1])

        # The exact totals, read after the scrapes (which recycled workers further). A
        # worker that is still importing has not added its 1 to every series yet, so a
        # scrape that overlaps a boot is taken again (for up to 30 s).
        deadline = time.monotonic() + 30
        while True:
            boots = churned.count(BOOT_LINE)
            samples = parse(timed_get(churned.port, "/metrics")[1])
            churn_total = samples.get(("bench_churn_total", ()), -1.0)
            items = {value for key, value in samples.items()
                     if key[0] == "bench_items_total"}
            latency_counts = {value for key, value in samples.items()
                              if key[0] == "bench_latency_seconds_count"}
            exact = (churn_total == sent and items == {float(boots)}
                     and latency_counts == {float(boots)} and errors == 0)
            if exact or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        recycles = churned.count(r"Autorestarting worker")
        final_files, archives, owners = file_breakdown(directory)
        wait_for(lambda: quiet(churned), 60, "no worker booting", churned)
        raw_churned, raw_fresh = raw_exposition_ms(directory), raw_exposition_ms(fresh_directory)
        bounded = max_files <= bound and final_files <= bound

        print(f"  churn: {sent} increments in {churn_seconds:.1f} s, {errors} failed requests, "
              f"{len(pids)} worker pids answered, {recycles} 'Autorestarting worker' lines, "
              f"{boots} workers booted in all")
        print(f"  totals: bench_churn_total = {churn_total:g} (sent {sent}); "
              f"bench_items_total over {ITEMS} series = {sorted(items)} "
              f"(expected {boots}, one per booted worker); "
              f"bench_latency_seconds_count = {sorted(latency_counts)}   "
              f"exact: {'PASS' if exact else 'FAIL'}")
        print(f"  .db files in {directory}: at most {max_files} during the churn (sampled "
              f"every 25 increments), {final_files} at the end ({archives} archives + the "
              f"files of {owners} live workers); bound {bound} = ({WORKERS} + 1) workers x "
              f"{per_worker} kinds + {per_worker} archives; without the fold every booted "
              f"worker would leave its {per_worker}: {boots * per_worker}   "
              f"bounded: {'PASS' if bounded else 'FAIL'}")
        for line in comparison.lines():
            print(line)
        print(f"  where it goes: prometheus_client's own merge + generate_latest in this "
              f"process, median of {RAW_REPEATS}: churned directory {raw_churned:.2f} ms, "
              f"fresh {raw_fresh:.2f} ms, ratio {raw_churned / raw_fresh:.3f} (the archives "
              "hold one more worker's worth of lines to read)")
        fast = comparison.ratio <= CHURN_BAR
        print(f"  ratio of medians (churned / fresh): {comparison.ratio:.3f}   "
              f"bar <= {CHURN_BAR}: {'PASS' if fast else 'FAIL'}")
        print(f"  scrapes alternate between the servers, one by one, each taken while no "
              f"worker of either server is booting; the scrapes recycled {during[0]} more "
              f"workers of the churned server, {during[1]} of the fresh one (--max-requests 0: "
              "never)")
        print(f"  churned server: {churned.command}")
        print(f"  fresh server:   {fresh.command}")
        print("  (COMMON_API_STATE_DIR unset: the config module creates each server's state "
              "directory)")
    return exact and bounded and fast


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer scrapes (about 2 minutes instead of about 5)")
    parser.add_argument("--part", choices=("a", "b", "all"), default="all")
    parser.add_argument("--workers", default=",".join(map(str, SCRAPE_WORKERS)),
                        help="part (a)'s worker counts, comma-separated")
    parser.add_argument("--before", type=Path, default=None,
                        help="part (a): also scrape, in the same rounds, the server run from "
                             "this other checkout of the project (e.g. a worktree of an "
                             "earlier commit)")
    args = parser.parse_args(argv)
    sizes = tuple(int(part) for part in args.workers.split(","))
    settings = (Settings(samples=40, warmup=5, churn_increments=800, max_requests=25,
                         churn_samples=50) if args.quick else
                Settings(samples=100, warmup=10, churn_increments=1700, max_requests=50,
                         churn_samples=150))
    command = shlex.join([sys.executable, *sys.argv])
    print(f"command: {command}")
    print(f"python {sys.version.split()[0]}, gunicorn {metadata.version('gunicorn')}, "
          f"prometheus_client {metadata.version('prometheus_client')}, "
          f"flask {metadata.version('flask')}, {os.cpu_count()} CPUs")
    print("per-request cost with multiprocess metrics on: see benchmarks/bench_overhead.py "
          "(variants bp-mp, bp-state)\n")
    started = time.monotonic()
    results = []
    if args.part in ("a", "all"):
        results.append(part_a(settings, sizes, args.before))
    if args.part in ("b", "all"):
        results.append(part_b(settings))
    print(f"\ntotal {time.monotonic() - started:.0f} s: "
          f"{'PASS' if all(results) else 'FAIL'}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
