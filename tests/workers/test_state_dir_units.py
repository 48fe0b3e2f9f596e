"""The pieces of common_api.workers, without gunicorn.

Metric files come from real child processes running prometheus_client in multiprocess mode
on a temporary state directory; everything else runs in this process on the same files a
server's workers would share.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from common_api.periodic import PeriodicThread, ThreadLevel
from common_api.services.metrics import Baseline, MetricsService
from common_api.workers.metrics_files import (
    FileBaselineStore,
    LockedMultiProcessCollector,
    fold_dead_worker,
)
from common_api.workers.peers import Worker
from common_api.workers.shared_levels import SharedLogLevels
from common_api.workers.state_dir import StateDir, file_lock, write_json_atomically
from common_api.workers.status_board import StatusBoard

SampleKey = tuple[str, tuple[tuple[str, str], ...]]

# One worker's metrics: i is the worker's number (1, 2, 3), so every total is known.
WORKER_SCRIPT = textwrap.dedent("""
    import os, sys
    from prometheus_client import Counter, Gauge, Histogram, Summary

    i = int(sys.argv[1])
    jobs = Counter("jobs", "Jobs done", ["kind"])
    jobs.labels("a").inc(i)
    jobs.labels("b").inc(10 * i)
    latency = Histogram("latency_seconds", "Latency", buckets=(0.1, 1.0))
    for _ in range(i):
        latency.observe(0.0625)  # binary-exact values: sums do not depend on order
    latency.observe(0.5 * i)
    Summary("sizes_bytes", "Sizes").observe(100 * i)
    Gauge("inflight", "In flight", multiprocess_mode="livesum").set(i)
    Gauge("peak", "Peak", multiprocess_mode="max").set(i)
    Gauge("floor", "Floor", multiprocess_mode="min").set(i)
    Gauge("memory", "Memory", multiprocess_mode="sum").set(i)
    Gauge("per_process", "Per process", multiprocess_mode="all").set(i)
    Gauge("latest", "Latest", multiprocess_mode="mostrecent").set(i)
    print(os.getpid())
""")

# Kept exactly by the fold: counters, histograms, summaries and the sum/min/max gauges
KEPT = ("jobs", "latency_seconds", "sizes_bytes", "peak", "floor", "memory")


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state").create()


def run_worker(state: StateDir, number: int) -> int:
    """Run one 'worker' process to completion; return its (now dead) pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(state.prometheus)}
    done = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, str(number)], env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    return int(done.stdout)


def collected(state: StateDir) -> dict[SampleKey, float]:
    """What a scrape sums: (sample name, sorted labels) -> value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in LockedMultiProcessCollector(state).collect()
            for sample in metric.samples}


def of_metrics(samples: dict[SampleKey, float], names: tuple[str, ...]
               ) -> dict[SampleKey, float]:
    return {key: value for key, value in samples.items()
            if key[0].removesuffix("_total").removesuffix("_sum").removesuffix("_count")
            .removesuffix("_bucket") in names}


def files_of(state: StateDir, pid: int) -> list[str]:
    return sorted(path.name for path in state.prometheus.glob(f"*_{pid}.db"))


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that is alive for the whole test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


# --------------------------------------------------------------------------- the fold


def test_fold_keeps_every_total_exact_and_removes_the_dead_workers_files(
        state: StateDir) -> None:
    pids = [run_worker(state, number) for number in (1, 2, 3)]
    before = collected(state)
    assert before[("jobs_total", (("kind", "a"),))] == 6
    assert before[("jobs_total", (("kind", "b"),))] == 60
    assert before[("latency_seconds_count", ())] == 9
    assert before[("latency_seconds_bucket", (("le", "0.1"),))] == 6
    assert before[("latency_seconds_sum", ())] == 3.375
    assert before[("sizes_bytes_sum", ())] == 600
    kept = of_metrics(before, KEPT)

    for pid in pids[:2]:
        fold_dead_worker(state, pid)
        assert files_of(state, pid) == []
        assert of_metrics(collected(state), KEPT) == kept

    # the live worker's series are still its own: live and per-process gauges
    after = collected(state)
    assert after[("inflight", ())] == 3
    assert [key for key in after if key[0] == "per_process"] == [
        ("per_process", (("pid", str(pids[2])),))]

    fold_dead_worker(state, pids[2])
    assert of_metrics(collected(state), KEPT) == kept
    assert sorted(path.name for path in state.prometheus.iterdir()) == [
        "counter_archive.db", "gauge_max_archive.db", "gauge_min_archive.db",
        "gauge_mostrecent_archive.db", "gauge_sum_archive.db", "histogram_archive.db",
        "summary_archive.db"]


def test_fold_is_exact_while_a_live_worker_keeps_counting(state: StateDir) -> None:
    dead = [run_worker(state, number) for number in (1, 2)]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(state.prometheus)}
    live = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            from prometheus_client import Counter
            jobs = Counter("jobs", "Jobs done", ["kind"])
            for _ in range(20000):
                jobs.labels("a").inc()
        """)], env=env)
    try:
        for pid in dead:
            fold_dead_worker(state, pid)
        assert live.wait(60) == 0
    finally:
        live.kill()
    assert collected(state)[("jobs_total", (("kind", "a"),))] == 1 + 2 + 20000


def test_fold_keeps_the_most_recent_value_of_a_mostrecent_gauge(state: StateDir) -> None:
    pids = [run_worker(state, number) for number in (1, 2, 3)]
    assert collected(state)[("latest", ())] == 3
    for pid in pids:
        fold_dead_worker(state, pid)
    assert collected(state).get(("latest", ())) == 3


# --------------------------------------------------------------------------- reset baseline


def test_file_baseline_store_round_trips_and_follows_a_new_save(tmp_path: Path) -> None:
    path = tmp_path / "metrics-baseline.json"
    writer, reader = FileBaselineStore(path), FileBaselineStore(path)
    assert reader.load() is None
    first = Baseline({("jobs_total", (("kind", "a"),)): 6.0, ("latency_seconds_count", ()): 9.0,
                      ("odd_total", (("path", 'a"b\\c'), ("z", "é"))): 1.5}, 1234.5)
    writer.save(first)
    assert reader.load() == first
    assert reader.load() is reader.load()  # re-read only when the file changes
    second = Baseline({("jobs_total", (("kind", "a"),)): 7.0}, 1300.0)
    writer.save(second)
    assert reader.load() == second


def test_reset_through_one_worker_is_subtracted_by_another(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    jobs = Counter("jobs", "Jobs done", registry=registry)
    jobs.inc(5)
    path = tmp_path / "metrics-baseline.json"
    one = MetricsService([registry], FileBaselineStore(path))
    other = MetricsService([registry], FileBaselineStore(path))
    one.reset()
    jobs.inc(2)
    values = {s.name: s.value for m in other.collect() for s in m.samples}
    assert values["jobs_total"] == 2


# --------------------------------------------------------------------------- log levels


@pytest.fixture
def logger_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"units.{request.node.name}"
    yield name
    for other in list(logging.Logger.manager.loggerDict):
        if other == name or other.startswith(f"{name}."):
            logging.getLogger(other).setLevel(logging.NOTSET)


def test_published_level_is_applied_by_sync_once_per_change(state: StateDir,
                                                            logger_name: str) -> None:
    publisher, follower = SharedLogLevels(state), SharedLogLevels(state)
    logger = logging.getLogger(logger_name)
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        publisher.publish(logger_name, "DEBUG", None)
        assert (logger.level, handler.level) == (logging.DEBUG, logging.DEBUG)  # applied here
        logger.setLevel(logging.NOTSET)
        handler.setLevel(logging.NOTSET)
        assert follower.sync() is True
        assert (logger.level, handler.level) == (logging.DEBUG, logging.DEBUG)
        logger.setLevel(logging.ERROR)
        assert follower.sync() is False  # unchanged file: nothing re-applied
        assert logger.level == logging.ERROR
        publisher.publish(logger_name, "WARNING", None)
        assert follower.sync() is True
        assert logger.level == logging.WARNING
        assert follower.levels() == {logger_name: "WARNING"}
    finally:
        logger.removeHandler(handler)


def test_a_new_process_applies_the_levels_again_after_forget_applied(
        state: StateDir, logger_name: str) -> None:
    levels = SharedLogLevels(state)
    levels.publish(logger_name, "INFO", None)
    assert levels.sync() is False  # the publisher applied it already
    logging.getLogger(logger_name).setLevel(logging.CRITICAL)
    levels.forget_applied()
    assert levels.sync() is True
    assert logging.getLogger(logger_name).level == logging.INFO


def test_concurrent_publishers_lose_no_level(state: StateDir, logger_name: str) -> None:
    names = [f"{logger_name}.{n}" for n in range(40)]

    def publish(chunk: list[str]) -> None:
        levels = SharedLogLevels(state)
        for name in chunk:
            levels.publish(name, "ERROR", None)

    threads = [threading.Thread(target=publish, args=(names[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert SharedLogLevels(state).levels() == dict.fromkeys(names, "ERROR")


def test_unknown_level_in_the_file_is_skipped(state: StateDir, logger_name: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    write_json_atomically(state.loglevels, {"levels": {logger_name: "LOUD",
                                                       f"{logger_name}.ok": "ERROR"}})
    assert SharedLogLevels(state).sync() is True
    assert logging.getLogger(logger_name).level == logging.NOTSET
    assert logging.getLogger(f"{logger_name}.ok").level == logging.ERROR
    assert "Ignoring unknown shared level 'LOUD'" in caplog.text


# --------------------------------------------------------------------------- status board


def published_entry(interval: float, last_run: float | None) -> dict[str, Any]:
    return {"name": "beat", "level": "critical", "is_running": True, "is_active": True,
            "interval": interval, "init_wait": 0.0, "last_run_ago": 0.0,
            "last_run_timestamp": last_run, "total_runs": 3, "failed_runs": 0}


def publish_for(state: StateDir, pid: int, written_at: float,
                *entries: dict[str, Any]) -> None:
    write_json_atomically(state.worker_status(pid), {
        "pid": pid, "written_at": written_at,
        "threads": [{**entry, "pid": pid} for entry in entries],
        "thread_names": {"1": "beat"}})


def no_threads() -> list[PeriodicThread]:
    return []


def workers_of(*pids: int) -> Callable[[], list[Worker]]:
    """A stand-in for the process table's sibling workers (these tests have no master)."""
    return lambda: [Worker(pid, 0) for pid in pids]


def test_a_stale_published_entry_is_rejudged_inactive(state: StateDir, live_pid: int) -> None:
    now = time.time()
    publish_for(state, live_pid, now - 9.0, published_entry(1.0, now - 10.0))
    (entry,) = StatusBoard(state, no_threads, workers_of(live_pid)).statuses()
    assert (entry["pid"], entry["is_active"]) == (live_pid, False)
    assert entry["last_run_ago"] >= 10.0


def test_a_published_entry_before_its_first_run_goes_stale_from_the_publish_time(
        state: StateDir, live_pid: int) -> None:
    now = time.time()
    publish_for(state, live_pid, now - 5.0, published_entry(1.0, None))
    (entry,) = StatusBoard(state, no_threads, workers_of(live_pid)).statuses()
    assert entry["is_active"] is False


def test_a_recent_published_entry_stays_active(state: StateDir, live_pid: int) -> None:
    now = time.time()
    publish_for(state, live_pid, now - 0.2, published_entry(1.0, now - 0.5))
    (entry,) = StatusBoard(state, no_threads, workers_of(live_pid)).statuses()
    assert entry["is_active"] is True


def test_a_short_interval_thread_published_within_the_publish_period_stays_active(
        state: StateDir, live_pid: int) -> None:
    now = time.time()
    # published 0.45 s ago (workers publish every 0.5 s), last run 0.15 s before that
    publish_for(state, live_pid, now - 0.45, published_entry(0.2, now - 0.6))
    (entry,) = StatusBoard(state, no_threads, workers_of(live_pid)).statuses()
    assert entry["is_active"] is True


def test_dead_and_own_publications_are_skipped(state: StateDir) -> None:
    now = time.time()
    publish_for(state, dead_pid(), now, published_entry(1.0, now))
    publish_for(state, os.getpid(), now, published_entry(1.0, now))
    local = PeriodicThread("units-local", 5.0, lambda: None, level=ThreadLevel.HIGH)
    statuses = StatusBoard(state, lambda: [local], workers_of()).statuses()
    assert [(s["name"], s["pid"]) for s in statuses] == [("units-local", os.getpid())]


def test_publish_writes_this_process_threads_and_names(state: StateDir) -> None:
    local = PeriodicThread("units-published", 5.0, lambda: None, level=ThreadLevel.LOW)
    board = StatusBoard(state, lambda: [local])
    board.publish()
    data = json.loads(state.worker_status(os.getpid()).read_text())
    assert [entry["name"] for entry in data["threads"]] == ["units-published"]
    assert data["thread_names"][str(threading.get_ident())] == threading.current_thread().name
    assert board.thread_names(os.getpid()) == data["thread_names"]
    board.withdraw(os.getpid())
    assert not state.worker_status(os.getpid()).exists()


def test_a_reset_waits_for_a_worker_whose_published_metric_file_was_since_replaced(
        state: StateDir, live_pid: int) -> None:
    # the worker published that its file is in place, then the directory was deleted and
    # the file written back (a new inode) or not yet: its status no longer holds, and a
    # baseline summed now would miss or misjudge its counts
    own_file = state.prometheus / f"counter_{live_pid}.db"
    own_file.write_bytes(b"\0" * 64)
    status = {"pid": live_pid, "written_at": time.time(), "threads": [],
              "thread_names": {}, "metrics_misplaced": {},
              "metric_files": {own_file.name: own_file.stat().st_ino}}
    write_json_atomically(state.worker_status(live_pid), status)
    board = StatusBoard(state, no_threads, workers_of(live_pid))
    assert board.misplaced_metrics() is None

    replacement = own_file.with_suffix(".new")
    replacement.write_bytes(b"\0" * 64)
    keep_inode_busy = own_file.open("rb")  # so the new file cannot reuse the old inode
    try:
        replacement.replace(own_file)
        why = board.misplaced_metrics()
        assert why is not None and str(live_pid) in why and own_file.name in why
        own_file.unlink()
        assert board.misplaced_metrics() is not None
    finally:
        keep_inode_busy.close()


def test_a_new_state_directory_holds_its_lock_files_so_a_read_only_one_still_locks(
        tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state").create()
    assert state.metrics_lock.is_file() and state.loglevels_lock.is_file()
    root = str(state.root)
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", root, root],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.strip()}")
    try:
        with pytest.raises(OSError):  # read-only indeed: nothing new can be made in it
            (state.root / "probe").touch()
        with file_lock(state.metrics_lock, exclusive=False):
            pass
        with file_lock(state.loglevels_lock, exclusive=True):
            pass
    finally:
        subprocess.run(["umount", root], check=True)
