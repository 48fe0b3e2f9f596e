"""Issue 3 acceptance: real gunicorn, 3 workers, one component (over HTTP only).

Every test starts ``common-api serve --app multi_app:app --workers 3`` (tests/apps) on a free
port. Requests go out on a new connection each, a few at a time, so the kernel hands them to
different workers; every check is made on every answer, and a test goes on until it has
answers from all 3 workers (it fails below 2). ``X-Worker-Pid`` names the answering worker.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer, wait_until

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKERS = 3
NEED = 2  # distinct workers that must answer a spread of requests (all 3 are tried for)
BATCH = 3  # requests in flight at once while spreading
LOGGER = "multi.app"
# the app's periodic threads and their intervals; the first two decide health
THREADS = {"heartbeat": 0.4, "watchdog": 0.5, "level-probe": 0.1}
HEALTH_THREADS = ("heartbeat", "watchdog")
HOST_SERIES = ("host_hits_total", "host_latency_seconds_count", "host_sizes_bytes_count")
RESETTABLE = frozenset({"counter", "histogram", "summary"})

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


# --------------------------------------------------------------------------- helpers


def url(server: LiveServer, path: str) -> str:
    return server.url + path


def fresh_get(server: LiveServer, path: str, **params: str) -> requests.Response:
    """A GET on a new connection (no session), so any worker may take it."""
    return requests.get(url(server, path), params=params, timeout=20,
                        headers={"Connection": "close"})


def worker_pid(response: requests.Response) -> int:
    return int(response.headers["X-Worker-Pid"])


def spread(server: LiveServer, path: str, check: Callable[[requests.Response], None],
           want: int = WORKERS, min_requests: int = 1, timeout: float = 15.0,
           must_include: frozenset[int] = frozenset(), **params: str) -> dict[int, int]:
    """GET ``path`` until ``want`` workers (and ``must_include``) answered; ``check`` each.

    Returns how many answers each worker gave. Fails unless at least NEED workers and every
    pid of ``must_include`` answered.
    """
    answers: Counter[int] = Counter()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(BATCH) as pool:
        while True:
            batch = list(pool.map(lambda _: fresh_get(server, path, **params), range(BATCH)))
            for response in batch:
                check(response)
                answers[worker_pid(response)] += 1
            done = len(answers) >= want and must_include <= set(answers)
            if (done and answers.total() >= min_requests) or time.monotonic() > deadline:
                break
    assert len(answers) >= NEED, f"only workers {sorted(answers)} answered {path}"
    assert must_include <= set(answers), f"{sorted(must_include)} never answered {path}"
    return dict(answers)


def hit(server: LiveServer, count: int) -> Counter[int]:
    """``count`` increments of host_hits, a few in flight at once; the hits per worker."""
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: fresh_get(server, "/hit"), range(count)))
    assert all(response.status_code == 200 for response in answers)
    return Counter(response.json()["pid"] for response in answers)


def thread_entries(server: LiveServer) -> tuple[int, list[dict[str, Any]]]:
    response = fresh_get(server, "/periodic-threads")
    assert response.status_code == 200
    return worker_pid(response), response.json()["threads"]


def active_workers(server: LiveServer) -> set[int]:
    """Pids whose every periodic thread of the app is listed as active."""
    _, entries = thread_entries(server)
    active: dict[int, set[str]] = {}
    for entry in entries:
        if entry["is_active"]:
            active.setdefault(entry["pid"], set()).add(entry["name"])
    return {pid for pid, names in active.items() if names >= set(HEALTH_THREADS)}


def wait_for_workers(server: LiveServer, gone: frozenset[int] = frozenset(),
                     timeout: float = 20.0) -> set[int]:
    """The pids of WORKERS workers that all run their threads, none of them in ``gone``."""

    def ready() -> set[int] | None:
        pids = active_workers(server)
        return pids if len(pids) == WORKERS and not pids & gone else None

    pids = wait_until(ready, timeout, interval=0.1, message=f"{WORKERS} active workers")
    assert isinstance(pids, set)
    return pids


def state_dir(server: LiveServer) -> Path:
    body = fresh_get(server, "/state-dir").json()
    assert body["prometheus"] == str(Path(body["state_dir"]) / "prometheus")
    return Path(body["state_dir"])


def kill_worker(server: LiveServer, pid: int, workers: set[int]) -> tuple[set[int], int]:
    """SIGKILL worker ``pid``; wait for its fold and its replacement.

    Returns the new set of live workers and the replacement's pid.
    """
    prometheus = state_dir(server) / "prometheus"
    assert list(prometheus.glob(f"*_{pid}.db")), "the victim has no metric files to fold"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not list(prometheus.glob(f"*_{pid}.db")), 10,
               message=f"the metric files of killed worker {pid} folded away")
    live = wait_for_workers(server, gone=frozenset({pid}))
    (replacement,) = live - workers
    return live, replacement


def samples(text: str) -> dict[SampleKey, tuple[str, float]]:
    """Every sample of an exposition: (name, sorted labels) -> (family type, value)."""
    found: dict[SampleKey, tuple[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = (family.type,
                                                                         sample.value)
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))][1]


def host_counts(response: requests.Response) -> dict[str, float]:
    assert response.status_code == 200
    return {name: value(response.text, name) for name in HOST_SERIES}


def probes(entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What each worker's level-probe thread last reported (level, DEBUG records), by pid."""
    return {entry["pid"]: (entry["last_summary"] or {}).get("extra_info", {})
            for entry in entries if entry["name"] == "level-probe"}


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    yield start_server("--app", "multi_app:app", "--workers", str(WORKERS),
                       env={"PYTHONPATH": path})


@pytest.fixture
def workers(server: LiveServer) -> set[int]:
    """The pids of the server's 3 workers, once each runs its periodic threads."""
    return wait_for_workers(server)


# --------------------------------------------------------------------------- log levels


def test_level_set_once_is_seen_by_every_worker(server: LiveServer, workers: set[int]) -> None:
    done = fresh_get(server, "/loglevel", logger_name=LOGGER, level="DEBUG")
    assert done.text == f"Set {LOGGER} level to DEBUG (including all handlers)"

    def debug(response: requests.Response) -> None:
        assert (response.status_code, response.text) == (200, f"{LOGGER}: DEBUG"), \
            f"worker {worker_pid(response)}"

    spread(server, "/loglevel", debug, logger_name=LOGGER)


def test_level_reaches_workers_without_a_request_within_one_second(
        server: LiveServer, workers: set[int]) -> None:
    def levels() -> dict[int, str | None]:
        return {pid: probe.get("level") for pid, probe in probes(thread_entries(server)[1]).items()}

    wait_until(lambda: levels() == dict.fromkeys(workers, "WARNING"), 5,
               message="every level probe at the initial level")

    fresh_get(server, "/loglevel", logger_name=LOGGER, level="DEBUG").raise_for_status()
    set_at = time.monotonic()

    def all_debug() -> bool:
        # /periodic-threads never applies levels: each worker's level-probe thread reports
        # what its worker applied in the background, and whether its DEBUG records got out
        found = probes(thread_entries(server)[1])
        return set(found) == workers and all(
            probe.get("level") == "DEBUG" and probe.get("debug_records", 0) > 0
            for probe in found.values())

    wait_until(all_debug, 1.5, interval=0.05, message="every level probe logging at DEBUG")
    assert time.monotonic() - set_at <= 1.5


# --------------------------------------------------------------------------- metrics


def test_45_increments_read_exactly_45_on_every_scrape(server: LiveServer,
                                                       workers: set[int]) -> None:
    hits = hit(server, 45)
    assert len(hits) >= NEED, f"the hits were not spread: {dict(hits)}"

    def exact(response: requests.Response) -> None:
        assert host_counts(response) == dict.fromkeys(HOST_SERIES, 45.0), \
            f"worker {worker_pid(response)}"
        assert value(response.text, "flask_http_request_total", method="GET",
                     endpoint="hit", status="200") == 45

    spread(server, "/metrics", exact, min_requests=10)


def check_reset_scrape(text: str, after_reset: Counter[str], reset_at: float) -> None:
    """Every counter, histogram and summary sample reads zero, except what happened since
    the reset: requests made since (bounded by their number) and periodic-thread runs
    (bounded by the time since). prometheus_client's per-process collectors are read live
    in each worker and not reset (README "Metrics")."""
    elapsed = time.time() - reset_at
    for (name, labels), (kind, number) in samples(text).items():
        if kind not in RESETTABLE or name.endswith("_created") or \
                name.startswith(("python_gc_", "process_")):
            continue
        label = dict(labels)
        where = f"{name}{label} = {number}"
        if name.startswith("common_api_periodic_thread_runs"):
            interval = THREADS[label["thread"]]
            assert number <= (elapsed + 1.0) / interval + 2, where
        elif name.startswith("flask_http_request") and label["endpoint"] in after_reset:
            if not name.endswith("_sum"):
                assert number <= after_reset[label["endpoint"]], where
        else:
            assert number == 0, where


def test_reset_once_reads_zero_on_every_scrape_including_a_busy_worker(
        server: LiveServer, workers: set[int], tmp_path: Path) -> None:
    hits = hit(server, 30)
    assert len(hits) >= NEED
    started = tmp_path / "sleep-started"
    sleeper = threading.Thread(target=fresh_get, args=(server, "/sleep"),
                               kwargs={"s": "4", "started": str(started)})
    sleeper.start()
    try:
        wait_until(started.exists, 10, message="the slow request started")
        busy = int(started.read_text())
        before = fresh_get(server, "/metrics")
        assert host_counts(before)["host_hits_total"] == 31
        assert value(before.text, "flask_http_request_total", method="GET", endpoint="hit",
                     status="200") == 30

        reset_at = time.time()
        reset = requests.post(url(server, "/metrics/reset"), timeout=20)
        assert (reset.status_code, reset.text) == (200, "ok")
        assert sleeper.is_alive(), "the busy worker finished before the reset"
        after_reset: Counter[str] = Counter({"common_api.reset_metrics": 1, "sleep": 1})

        def zero(response: requests.Response) -> None:
            assert host_counts(response) == dict.fromkeys(HOST_SERIES, 0.0), \
                f"worker {worker_pid(response)}"
            check_reset_scrape(response.text, after_reset, reset_at)
            after_reset["common_api.metrics"] += 1

        after_reset["common_api.metrics"] += BATCH  # a batch is in flight before any check
        spread(server, "/metrics", zero, min_requests=6, must_include=frozenset({busy}))
    finally:
        sleeper.join(30)
    assert not sleeper.is_alive()
    spread(server, "/metrics", zero, must_include=frozenset({busy}))


# --------------------------------------------------------------------------- health


def test_stalled_critical_thread_in_one_worker_makes_every_worker_answer_503(
        server: LiveServer, workers: set[int]) -> None:
    stalled = fresh_get(server, "/stall").json()["pid"]

    def unhealthy(response: requests.Response) -> None:
        assert response.status_code == 503, f"worker {worker_pid(response)}"
        body = response.json()
        assert body["healthy"] is False
        assert [(e["name"], e["level"], e["pid"]) for e in body["unhealthy_threads"]] == [
            ("heartbeat", "critical", stalled)]

    def every_worker_unhealthy() -> bool:
        # the other workers learn it from the stalled worker's next publication (<= 0.5 s)
        try:
            spread(server, "/periodic-threads-health", unhealthy)
        except AssertionError:
            return False
        return True

    wait_until(every_worker_unhealthy, 10, message="every worker answering 503")
    answers = spread(server, "/periodic-threads-health", unhealthy)
    assert set(answers) <= workers


# --------------------------------------------------------------------------- SIGKILL


def test_sigkilled_worker_counts_are_folded_not_lost(server: LiveServer,
                                                     workers: set[int]) -> None:
    hits = hit(server, 45)
    victim, victim_hits = hits.most_common(1)[0]
    assert victim_hits > 0
    live, replacement = kill_worker(server, victim, workers)
    hit(server, 15)

    def exact(response: requests.Response) -> None:
        assert host_counts(response) == dict.fromkeys(HOST_SERIES, 60.0), \
            f"worker {worker_pid(response)}"

    answers = spread(server, "/metrics", exact, min_requests=6,
                     must_include=frozenset({replacement}))
    assert victim not in answers and set(answers) <= live
    prometheus = state_dir(server) / "prometheus"
    assert (prometheus / "counter_archive.db").exists()
    assert not list(prometheus.glob(f"*_{victim}.db"))


def test_replacement_of_a_sigkilled_worker_starts_with_current_levels(
        server: LiveServer, workers: set[int]) -> None:
    setter = worker_pid(fresh_get(server, "/loglevel", logger_name=LOGGER, level="DEBUG"))
    live, replacement = kill_worker(server, setter, workers)

    def replacement_answer() -> dict[str, Any] | None:
        body: dict[str, Any] = fresh_get(server, "/pid").json()
        return body if body["pid"] == replacement else None

    # /pid is a host route: it reads the level and applies nothing
    first = wait_until(replacement_answer, 15, interval=0, message="the replacement answering")
    assert isinstance(first, dict) and first["level"] == "DEBUG"

    def debug(response: requests.Response) -> None:
        assert response.text == f"{LOGGER}: DEBUG", f"worker {worker_pid(response)}"

    spread(server, "/loglevel", debug, must_include=frozenset({replacement}),
           logger_name=LOGGER)

    def replacement_logs_debug() -> bool:
        # its probe's first run came at import, before the runtime applied the levels
        found = probes(thread_entries(server)[1])
        assert set(found) == live
        return bool(found[replacement].get("level") == "DEBUG"
                    and found[replacement]["debug_records"] > 0)

    wait_until(replacement_logs_debug, 1.5, message="the replacement's probe at DEBUG")


def test_reset_holds_for_survivors_and_replacement_after_sigkill(
        server: LiveServer, workers: set[int]) -> None:
    before_reset = hit(server, 30)
    requests.post(url(server, "/metrics/reset"), timeout=20).raise_for_status()
    after_reset = hit(server, 9)
    victim = max(workers, key=lambda pid: (before_reset[pid] > 0, after_reset[pid]))
    assert before_reset[victim] > 0
    live, replacement = kill_worker(server, victim, workers)

    def reads(expected: float) -> Callable[[requests.Response], None]:
        def check(response: requests.Response) -> None:
            assert host_counts(response) == dict.fromkeys(HOST_SERIES, expected), \
                f"worker {worker_pid(response)}"
        return check

    answers = spread(server, "/metrics", reads(9.0), min_requests=6,
                     must_include=frozenset({replacement}))
    assert set(answers) <= live
    hit(server, 6)
    spread(server, "/metrics", reads(15.0), min_requests=6)


def test_sigkilled_worker_threads_disappear_and_health_recovers(
        server: LiveServer, workers: set[int]) -> None:
    stalled = fresh_get(server, "/stall").json()["pid"]
    wait_until(lambda: fresh_get(server, "/periodic-threads-health").status_code == 503, 10,
               message="health turning 503")
    os.kill(stalled, signal.SIGKILL)
    killed_at = time.monotonic()

    def gone() -> bool:
        _, entries = thread_entries(server)
        return all(entry["pid"] != stalled for entry in entries)

    wait_until(gone, 5, message=f"the threads of killed worker {stalled} unlisted")
    assert time.monotonic() - killed_at <= 5
    live = wait_for_workers(server, gone=frozenset({stalled}))

    def listing(response: requests.Response) -> None:
        body = response.json()
        assert {entry["pid"] for entry in body["threads"]} == live
        assert body["summary"]["total_count"] == len(THREADS) * WORKERS

    def healthy(response: requests.Response) -> None:
        assert response.status_code == 200, f"worker {worker_pid(response)}: {response.text}"

    spread(server, "/periodic-threads", listing)
    spread(server, "/periodic-threads-health", healthy, must_include=frozenset(live - workers))


# --------------------------------------------------------------------------- threads


def test_threads_scope_all_dumps_every_worker_including_a_stuck_one(
        server: LiveServer, workers: set[int], tmp_path: Path) -> None:
    marker = tmp_path / "stuck"

    def block() -> None:
        with contextlib.suppress(requests.RequestException):  # the worker will be killed
            fresh_get(server, "/block", s="30", marker=str(marker))

    blocker = threading.Thread(target=block, daemon=True)
    blocker.start()
    wait_until(marker.exists, 10, message="a worker stuck")
    stuck = int(marker.read_text())
    try:
        started = time.monotonic()
        response = fresh_get(server, "/threads", scope="all")
        assert response.status_code == 200
        text = response.text
        headers = dict(re.findall(r"^=== Worker (\d+) (\([a-z]+\)) ===$", text, re.M))
        assert {int(pid) for pid in headers} == workers
        assert headers[str(stuck)] == "(faulthandler)"
        assert worker_pid(response) != stuck
        assert "\nWorkers: 3\n" in text
        stuck_block = text.split(f"=== Worker {stuck} (faulthandler) ===", 1)[1].split(
            "\n=== ", 1)[0]
        assert "in hold_gil" in stuck_block and "in block" in stuck_block
        assert "[heartbeat]" in stuck_block
        assert time.monotonic() - started < 10
        assert blocker.is_alive(), "the stuck worker got unstuck during the dump"

        body = fresh_get(server, "/threads", scope="all", format="json").json()
        by_pid = {worker["pid"]: worker for worker in body["workers"]}
        assert set(by_pid) == workers
        assert by_pid[stuck]["source"] == "faulthandler"
        assert "in hold_gil" in by_pid[stuck]["dump"]
        assert blocker.is_alive()
    finally:
        os.kill(stuck, signal.SIGKILL)  # do not wait out the block at shutdown
        blocker.join(10)


def test_threads_without_scope_answers_for_the_worker_named_in_the_header(
        server: LiveServer, workers: set[int]) -> None:
    def own_threads(response: requests.Response) -> None:
        body = response.json()
        assert body["pid"] == worker_pid(response)
        names = [thread["name"] for thread in body["threads"]]
        assert sorted(name for name in names if name in THREADS) == sorted(THREADS)

    answers = spread(server, "/threads", own_threads, format="json")
    assert set(answers) <= workers
    text = fresh_get(server, "/threads").text
    assert "=== Worker" not in text and text.count("Thread: <Thread(heartbeat,") == 1


# --------------------------------------------------------------------------- periodic threads


def test_periodic_threads_lists_every_worker_with_pids_and_summed_counts(
        server: LiveServer, workers: set[int]) -> None:
    def listing(response: requests.Response) -> None:
        body = response.json()
        threads = body["threads"]
        assert sorted((e["name"], e["pid"]) for e in threads) == sorted(
            (name, pid) for name in THREADS for pid in workers)
        summary = body["summary"]
        total = len(THREADS) * WORKERS
        assert (summary["total_count"], summary["running_count"]) == (total, total)
        assert summary["active_count"] == sum(1 for e in threads if e["is_active"])
        # each level counts the threads of every worker
        for level, name in (("critical", "heartbeat"), ("high", "watchdog")):
            assert summary["by_level"][level] == {"total": 3, "running": 3, "active": 3}, name
        assert (summary["by_level"]["low"]["total"], summary["by_level"]["low"]["running"]) \
            == (3, 3)

    spread(server, "/periodic-threads", listing)


def test_periodic_thread_by_name_answers_own_entry_and_lists_every_worker(
        server: LiveServer, workers: set[int]) -> None:
    def described(response: requests.Response) -> None:
        body = response.json()
        assert (body["name"], body["pid"]) == ("heartbeat", worker_pid(response))
        assert sorted(entry["pid"] for entry in body["workers"]) == sorted(workers)
        assert {entry["name"] for entry in body["workers"]} == {"heartbeat"}
        assert body["level"] == "critical"

    spread(server, "/periodic-threads/heartbeat", described)


def test_timed_level_reverts_on_time_in_every_worker(server: LiveServer,
                                                     workers: set[int]) -> None:
    def levels() -> dict[int, str | None]:
        return {pid: probe.get("level") for pid, probe in probes(thread_entries(server)[1]).items()}

    wait_until(lambda: levels() == dict.fromkeys(workers, "WARNING"), 5,
               message="every level probe at the initial level")
    done = fresh_get(server, "/loglevel", logger_name=LOGGER, level="DEBUG", duration="2")
    set_at = time.monotonic()
    assert done.text.startswith(f"Set {LOGGER} level to DEBUG (including all handlers) for 2")
    assert done.text.endswith(", then NOTSET")

    wait_until(lambda: levels() == dict.fromkeys(workers, "DEBUG"), 1.5, interval=0.05,
               message="every worker at DEBUG")
    listed = fresh_get(server, "/loglevel", logger_name=LOGGER).text
    assert listed.startswith(f"{LOGGER}: DEBUG (until ") and listed.endswith("then NOTSET)")

    # no request reaches the workers meanwhile: each one reverts in the background
    wait_until(lambda: levels() == dict.fromkeys(workers, "WARNING"), 4, interval=0.05,
               message="every worker back at the previous level")
    elapsed = time.monotonic() - set_at
    assert 2.0 <= elapsed <= 3.5, elapsed

    def reverted(response: requests.Response) -> None:
        assert response.text == f"{LOGGER}: NOTSET", f"worker {worker_pid(response)}"

    spread(server, "/loglevel", reverted, logger_name=LOGGER)
