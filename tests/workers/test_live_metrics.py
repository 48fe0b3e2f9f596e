"""Issue 17: /metrics shows every metric the component registers, with any number of
workers, compared with ``generate_latest(REGISTRY)`` of the same host in one process.

The host is ``tests/apps/every_kind.py`` (every kind of metric an LMCache component
registers). It is served by real gunicorn three ways, each started once for the module:
``common-api serve`` with 1 worker, plain gunicorn with the preset config and 3 workers,
and the README's own-config recipe (``--preload``) with 2 workers. Each gets the same 30
``/work`` requests as the one-process reference (a child process that imports the host,
sends them through Flask's test client and prints ``generate_latest(REGISTRY)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from support import (
    OPENMETRICS,
    LiveServer,
    assert_valid_exposition,
    freeze,
    launch_gunicorn,
    launch_server,
    wait_until,
)

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
REQUESTS = 30
WORKER_SIGNAL_BIT = 34 + 6  # SIGRTMIN + 6, the signal every common_api worker catches
PEER_TIMEOUT = 1.0
# how each host family of one process reads with N workers
SAME, TIMES_N, PER_WORKER, PID = "same", "times N", "one per worker", "the worker's pid"
EXPECTED = {
    "host_work": SAME, "host_work_seconds": SAME, "host_payload_bytes": SAME,
    "host_inflight": TIMES_N, "host_queue_size": PER_WORKER, "host_keys": TIMES_N,
    "host_pool_bytes": SAME, "host_build_info": SAME, "host_lifecycle": SAME,
    "host_custom_events": TIMES_N, "host_custom_limit": SAME, "host_custom_pid": PID,
    "otel_work": SAME,
}
OWN_CONFIG = '''
from common_api import gunicorn as common_api_hooks

common_api_hooks.prepare_state()
workers = 2
worker_class = "gthread"


def post_fork(server, worker):
    common_api_hooks.post_fork(server, worker)


def post_worker_init(worker):
    common_api_hooks.post_worker_init(worker)


def child_exit(server, worker):
    common_api_hooks.child_exit(server, worker)


def on_exit(server):
    common_api_hooks.on_exit(server)
'''
REFERENCE = '''
import json, sys
from prometheus_client import REGISTRY, generate_latest
import every_kind
client = every_kind.app.test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/work").status_code == 200
try:
    registry = generate_latest(REGISTRY).decode()
except RuntimeError as error:  # a raising callback: prometheus_client's own answer fails
    registry = repr(error)
scrape = client.get("/metrics")
print(json.dumps({"registry": registry, "status": scrape.status_code, "metrics": scrape.text}))
'''

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMMON_API_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS), env.get("PYTHONPATH")]))
    return {**env, **extra}


def one_process(**extra: str) -> dict[str, Any]:
    """The host in one plain process after the same requests."""
    done = subprocess.run([sys.executable, "-c", REFERENCE, str(REQUESTS)], env=_env(**extra),
                          capture_output=True, text=True, timeout=120, cwd=str(APPS))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def families(text: str) -> dict[str, Samples]:
    """Samples by family. The creation times (``_created``, families of their own in the
    text format) are left out: prometheus_client's multiprocess mode has none."""
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value
                          for s in family.samples if not s.name.endswith("_created")}
            for family in parse_text(text) if not family.name.endswith("_created")}


def worker_pids(server: LiveServer) -> set[int]:
    """The master's children that run as common_api workers (catch the worker signal)."""
    found = set()
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (task / "children").read_text().split())
    ready = set()
    for pid in found:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            caught = int(next(line for line in status.splitlines()
                              if line.startswith("SigCgt:")).split()[1], 16)
            if caught >> (WORKER_SIGNAL_BIT - 1) & 1:
                ready.add(pid)
    return ready


def fresh_get(server: LiveServer, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.get(server.url + path, headers=headers, timeout=30, **kwargs)


@contextlib.contextmanager
def served(server: LiveServer, workers: int) -> Iterator[LiveServer]:
    """``server`` once every worker is up and the requests are sent; stopped at the end."""
    try:
        def ready() -> bool:
            if server.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.log()}")
            with contextlib.suppress(requests.RequestException):
                return len(worker_pids(server)) == workers and \
                    fresh_get(server, "/metrics").status_code == 200
            return False

        wait_until(ready, 60, interval=0.1, message=f"{workers} workers ready")
        for _ in range(REQUESTS):
            assert fresh_get(server, "/work").status_code == 200
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return one_process()


@pytest.fixture(scope="module")
def serve_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    logs = tmp_path_factory.mktemp("serve1")
    server = launch_server(logs, "--app", "every_kind:app", "--workers", "1",
                           env=_env(EVERY_KIND_BROKEN="1", TMPDIR=str(logs)))
    with served(server, 1) as ready:
        yield ready


@pytest.fixture(scope="module")
def preset_3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    logs = tmp_path_factory.mktemp("preset3")
    server = launch_gunicorn(logs, "-c", "python:common_api.gunicorn_conf", "--workers", "3",
                             "every_kind:app", env=_env(EVERY_KIND_BROKEN="1",
                                                        TMPDIR=str(logs)))
    with served(server, 3) as ready:
        yield ready


@pytest.fixture(scope="module")
def own_config_2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    logs = tmp_path_factory.mktemp("own2")
    config = logs / "gunicorn.conf.py"
    config.write_text(OWN_CONFIG)
    server = launch_gunicorn(logs, "-c", str(config), "--preload", "every_kind:app",
                             env=_env(EVERY_KIND_BROKEN="1", TMPDIR=str(logs)))
    with served(server, 2) as ready:
        yield ready


SERVERS = {"serve_1": 1, "preset_3": 3, "own_config_2": 2}
PRELOADED = {"own_config_2"}  # its import-time gauge value was set once, in the master


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> tuple[LiveServer, int]:
    return request.getfixturevalue(request.param), SERVERS[request.param]


@pytest.fixture
def expected_rules(request: pytest.FixtureRequest) -> dict[str, str]:
    preloaded = request.node.callspec.params.get("server") in PRELOADED
    return {**EXPECTED, "host_inflight": SAME} if preloaded else EXPECTED


def _expected(family: str, rule: str, one: Samples, pids: set[int]) -> Samples:
    n = len(pids)
    if rule == SAME:
        return dict(one)
    if rule == TIMES_N:
        return {key: value * n for key, value in one.items()}
    if rule == PER_WORKER:
        return {(name, tuple(sorted((*labels, ("pid", str(pid)))))): value
                for (name, labels), value in one.items() for pid in pids}
    assert rule == PID
    if n == 1:
        return {(family, ()): float(next(iter(pids)))}
    return {(family, (("pid", str(pid)),)): float(pid) for pid in pids}


def test_every_family_of_one_process_is_shown_with_its_value(
        server: tuple[LiveServer, int], reference: dict[str, Any],
        expected_rules: dict[str, str]) -> None:
    live, workers = server
    one = families(reference["registry"])
    assert set(EXPECTED) <= set(one), sorted(set(EXPECTED) - set(one))
    pids = worker_pids(live)
    assert len(pids) == workers
    for _ in range(3):  # new connections: any worker may answer, each must be right
        answer = fresh_get(live, "/metrics")
        assert answer.status_code == 200
        shown = families(answer.text)
        assert set(one) <= set(shown), sorted(set(one) - set(shown))
        for family, rule in expected_rules.items():
            assert shown[family] == pytest.approx(_expected(family, rule, one[family], pids)), \
                family
        assert "X-Missing-Workers" not in answer.headers
        assert shown["common_api_scrape_missing_workers"] == {
            ("common_api_scrape_missing_workers", ()): 0.0}


def test_the_exposition_is_valid_for_promtool_and_both_parsers(
        server: tuple[LiveServer, int]) -> None:
    live, _ = server
    text = fresh_get(live, "/metrics").text
    openmetrics = fresh_get(live, "/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert_valid_exposition(text, openmetrics.text)
    names = {family.name for family in parse_openmetrics(openmetrics.text)}
    assert {"host_build", "host_lifecycle", "host_custom_events", "otel_work"} <= names


def test_a_raising_callback_leaves_its_series_out_and_is_logged_once_per_worker(
        server: tuple[LiveServer, int]) -> None:
    live, workers = server
    for _ in range(6):
        answer = fresh_get(live, "/metrics")
        assert answer.status_code == 200
        shown = families(answer.text)
        assert not shown.get("host_broken") and shown["host_queue_size"], shown.get("host_broken")
    lines = [line for line in live.log().splitlines() if "gauge host_broken raised" in line]
    assert 1 <= len(lines) <= workers, lines


def test_one_process_shows_the_same_as_generate_latest_and_survives_a_raising_callback(
        ) -> None:
    plain = one_process()
    assert plain["status"] == 200
    registry, scraped = families(plain["registry"]), families(plain["metrics"])
    for family, samples in registry.items():
        if family.startswith(("process_", "python_gc_")):
            assert family in scraped
        else:
            assert scraped[family] == samples, family
    broken = one_process(EVERY_KIND_BROKEN="1")
    assert broken["status"] == 200
    shown = families(broken["metrics"])
    assert not shown.get("host_broken")
    assert shown["host_queue_size"] == {("host_queue_size", ()): 7.0}


def test_a_stopped_worker_is_named_at_once_and_its_file_metrics_still_count(
        preset_3: LiveServer) -> None:
    pids = worker_pids(preset_3)
    stopped = min(pids)
    first_minute = int(time.time() // 60)
    freeze(stopped)
    try:
        for _ in range(3):
            started = time.monotonic()
            answer = fresh_get(preset_3, "/metrics")
            elapsed = time.monotonic() - started
            assert answer.status_code == 200
            assert elapsed < PEER_TIMEOUT, elapsed
            assert answer.headers["X-Missing-Workers"] == (
                f"{stopped} (stopped by SIGSTOP or a debugger)")
            shown = families(answer.text)
            assert shown["common_api_scrape_missing_worker"] == {
                ("common_api_scrape_missing_worker",
                 (("cause", "stopped"), ("pid", str(stopped)))): 1.0}
            assert shown["host_work"] == {("host_work_total", ()): float(REQUESTS)}
            assert {labels for _, labels in shown["host_queue_size"]} == {
                (("pid", str(pid)),) for pid in pids - {stopped}}
    finally:
        os.kill(stopped, signal.SIGCONT)
    logged = [line for line in preset_3.log().splitlines()
              if f"left out worker {stopped}'s live metrics" in line]
    minutes = int(time.time() // 60) - first_minute + 1
    assert 1 <= len(logged) <= minutes, logged  # once a minute, whichever worker scraped


def test_a_worker_holding_the_gil_is_named_after_the_deadline_not_waited_for(
        preset_3: LiveServer) -> None:
    before = worker_pids(preset_3)
    seen: list[tuple[int, str]] = []  # (answering pid, missing header) of every scrape

    def one_hold() -> tuple[requests.Response | None, dict[str, Any]]:
        holder: dict[str, Any] = {}

        def block() -> None:
            holder["pid"] = fresh_get(preset_3, "/block", params={"s": "12"}).json()["pid"]

        thread = threading.Thread(target=block)
        thread.start()
        try:
            def blocked() -> Any:
                answer = fresh_get(preset_3, "/metrics")
                seen.append((int(answer.headers.get("X-Worker-Pid", 0)),
                             answer.headers.get("X-Missing-Workers", "")))
                return answer if "X-Missing-Workers" in answer.headers else None

            try:
                answer = wait_until(blocked, 10, interval=0.05, message="a missing worker")
            except AssertionError:
                return None, holder
            assert isinstance(answer, requests.Response)
            assert thread.is_alive(), "the worker was released before the scrape answered"
            return answer, holder
        finally:
            thread.join(30)

    # on a loaded machine the hold may start late or the scrapes land unluckily: up to
    # three holds, each must either be named by a scrape or be retried
    for _ in range(3):
        answer, holder = one_hold()
        if answer is not None:
            break
    else:
        raise AssertionError(f"no scrape named the held worker in three holds: {seen}")
    assert answer.status_code == 200
    assert answer.elapsed.total_seconds() < PEER_TIMEOUT + 1.0
    assert holder["pid"] in before
    assert f"{holder['pid']} (no answer within 1 s)" == answer.headers["X-Missing-Workers"]


def _socket_names() -> dict[int, str]:
    """Each worker's peer channel name, found the way a stranger would: /proc/net/unix."""
    names = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        path = line.split()[-1] if len(line.split()) > 7 else ""
        last = path.rsplit("/", 1)[-1]
        if path.startswith("@common_api-peer/") and "/claim/" not in path and last.isdigit():
            names[int(last)] = path
    return names


def test_a_stranger_that_finds_a_worker_socket_gets_nothing(preset_3: LiveServer) -> None:
    pids = worker_pids(preset_3)
    names = _socket_names()
    target = min(pids)
    assert target in names, names
    fds_before = len(os.listdir(f"/proc/{target}/fd"))
    request = json.dumps({"kind": "metrics", "body": None}).encode()
    for data in (len(request).to_bytes(4, "big") + request, b"\x00" * 10, b""):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(names[target].replace("@", "\0", 1))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(data)
            got = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    got += chunk
            assert got == b""
    answer = fresh_get(preset_3, "/metrics")
    assert answer.status_code == 200 and "X-Missing-Workers" not in answer.headers
    wait_until(lambda: len(os.listdir(f"/proc/{target}/fd")) <= fds_before, 5,
               message="the worker's file descriptors back to where they were")
