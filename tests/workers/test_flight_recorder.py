"""Issue 20 acceptance over HTTP: a real 3-worker ``common-api serve`` of ``recorder_app``.

One server for the module. Its high thread ``rec-sync`` is stalled (in every worker) in
``wait_on_downstream()``, called from ``sync_with_controller()``, by creating the stall file;
health must then say where, whichever worker answers.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from support import LiveServer, delete_tree, freeze, running_server, wait_until

from common_api.cli import main

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKERS = 3
THREAD = "rec-sync"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    directory = tmp_path_factory.mktemp("recorder")
    stall = directory / "stall"
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    with running_server(directory, "--app", "recorder_app:app", "--workers", str(WORKERS),
                        env={"PYTHONPATH": path, "STALL_FILE": str(stall),
                             "COMMON_API_STATE_DIR": str(directory / "state")}) as server:
        try:
            yield server, stall
        finally:
            stall.unlink(missing_ok=True)


def fresh_get(server: LiveServer, path: str) -> requests.Response:
    """A GET on a new connection, so any worker may take it."""
    return requests.get(server.url + path, timeout=20, headers={"Connection": "close"})


def thread_pids(server: LiveServer) -> set[int]:
    listing = fresh_get(server, "/periodic-threads").json()["threads"]
    return {entry["pid"] for entry in listing if entry["name"] == THREAD}


def all_workers(server: LiveServer) -> set[int]:
    """The pids of the server's workers, once each runs ``rec-sync``."""
    def found() -> set[int] | None:
        pids = thread_pids(server)
        return pids if len(pids) == WORKERS else None

    workers = wait_until(found, 30, message=f"{WORKERS} workers running {THREAD}")
    assert isinstance(workers, set)
    return workers


def from_every_worker(server: LiveServer, path: str, workers: set[int],
                      complete: Callable[[requests.Response], bool],
                      timeout: float = 20.0) -> dict[int, requests.Response]:
    """An answer to ``path`` from each of ``workers`` (new connections, a few at a time)
    that is ``complete``: what the others published reaches each within a publication."""
    answers: dict[int, requests.Response] = {}

    def collect() -> bool:
        with ThreadPoolExecutor(WORKERS) as pool:
            for response in pool.map(lambda _: fresh_get(server, path), range(WORKERS)):
                if complete(response):
                    answers[int(response.headers["X-Worker-Pid"])] = response
        return workers <= set(answers)

    wait_until(collect, timeout, interval=0.01,
               message=f"every worker answering {path} for all workers: {sorted(answers)}")
    return answers


def assert_stuck_in_wait_on_downstream(entry: dict[str, Any]) -> None:
    """The entry's stack ends (innermost last) in wait_on_downstream, called from
    sync_with_controller, then the standard library's wait it blocks in."""
    stack = entry["stack"]
    assert isinstance(stack, list) and 1 <= len(stack) <= 30, stack
    functions = [line.split(" (")[0] for line in stack]
    at = functions.index("recorder_app:wait_on_downstream")
    assert functions[at - 1] == "recorder_app:sync_with_controller", stack
    assert all(name.startswith("threading:") for name in functions[at + 1:]), stack
    assert "recorder_app.py:" in stack[at]
    began = datetime.fromisoformat(entry["stalled_since"])
    assert began <= datetime.now()


def names_all(workers: set[int]) -> Callable[[requests.Response], bool]:
    def complete(response: requests.Response) -> bool:
        body = response.json()
        entries = body.get("unhealthy_threads", body.get("workers", body.get("threads")))
        return {e["pid"] for e in entries if e.get("stack")} == workers

    return complete


def test_a_stalled_thread_is_named_where_it_is_stuck_by_every_worker(
        served: tuple[LiveServer, Path], capsys: pytest.CaptureFixture[str]) -> None:
    server, stall = served
    workers = all_workers(server)
    stall.touch()
    try:
        def stalled_everywhere() -> bool:
            body = fresh_get(server, "/periodic-threads-health").json()
            named = {e["pid"] for e in body["unhealthy_threads"] if e.get("stack")}
            return named == workers

        wait_until(stalled_everywhere, 20, message=f"{THREAD} stalled in every worker")
        for pid, answer in from_every_worker(server, "/periodic-threads-health", workers,
                                             names_all(workers)).items():
            assert answer.status_code == 503, pid
            entries = answer.json()["unhealthy_threads"]
            assert {e["pid"] for e in entries} == workers, f"worker {pid}: {entries}"
            for entry in entries:
                assert entry["name"] == THREAD
                assert entry["reason"] == "no run within 3 intervals"  # seed fields as they were
                assert {"level", "last_run_ago", "interval", "is_running"} <= set(entry)
                assert_stuck_in_wait_on_downstream(entry)
        for pid, answer in from_every_worker(server, f"/periodic-threads/{THREAD}", workers,
                                             names_all(workers)).items():
            assert {w["pid"] for w in answer.json()["workers"]} == workers, pid
            for entry in answer.json()["workers"]:
                assert_stuck_in_wait_on_downstream(entry)
        listing = fresh_get(server, "/periodic-threads").json()["threads"]
        assert len(listing) == WORKERS
        for entry in listing:
            assert_stuck_in_wait_on_downstream(entry)
        capsys.readouterr()
        assert main(["status", server.url]) == 1
        row = capsys.readouterr().out.splitlines()[1]
        labels = re.findall(r"rec-sync@(\d+): no run within 3 intervals at "
                            r"recorder_app:wait_on_downstream \([^)]*recorder_app\.py:\d+\)",
                            row)
        assert {int(pid) for pid in labels} == workers, row
    finally:
        stall.unlink(missing_ok=True)

    def released() -> bool:
        listing = fresh_get(server, "/periodic-threads").json()["threads"]
        return all("stack" not in entry and entry["is_active"] for entry in listing)

    wait_until(released, 20, message="no stack once released, in every worker's entry")


def crunch_samples(collapsed: str, root: str = "") -> int:
    """Samples in ``crunch_numbers`` (under the root frame ``root``, when given)."""
    return sum(int(line.rsplit(" ", 1)[1]) for line in collapsed.splitlines()
               if "recorder_app:crunch_numbers" in line and line.startswith(root))


@pytest.fixture(scope="module")
def spike(served: tuple[LiveServer, Path]) -> int:
    """A 2 s CPU spike in one worker that ended 2 s ago: that worker's pid."""
    server, _ = served
    all_workers(server)
    answer = fresh_get(server, "/crunch?seconds=2")
    assert answer.status_code == 200
    time.sleep(2.0)  # the scenario itself: the spike ended 2 s before anyone looks
    return int(answer.json()["pid"])


def from_worker(server: LiveServer, path: str, pid: int) -> requests.Response:
    """``path`` as answered by worker ``pid`` (new connections until it takes one)."""
    def answered() -> requests.Response | None:
        started = time.monotonic()
        response = fresh_get(server, path)
        assert time.monotonic() - started < 2.0, path  # answered at once, no window run
        return response if int(response.headers["X-Worker-Pid"]) == pid else None

    response = wait_until(answered, 20, interval=0.01, message=f"worker {pid} answering")
    assert isinstance(response, requests.Response)
    return response


def test_a_spike_that_ended_before_anyone_looked_is_in_the_worker_s_history(
        served: tuple[LiveServer, Path], spike: int) -> None:
    server, stall = served
    delete_tree(stall.parent / "state")  # a fault of the state directory touches no history
    response = from_worker(server, "/profile?last=30", spike)
    assert response.status_code == 200
    assert crunch_samples(response.text) >= 10, response.text
    assert int(response.headers["X-Profile-Samples"]) >= crunch_samples(response.text)
    assert 4.0 <= float(response.headers["X-Profile-Span-Seconds"]) <= 30.0
    for fmt in ("json", "speedscope", "svg"):
        formatted = from_worker(server, f"/profile?last=30&format={fmt}&idle=false", spike)
        assert formatted.status_code == 200 and "crunch_numbers" in formatted.text, fmt
    assert fresh_get(server, "/profile?last=601").status_code == 400


def test_scope_all_merges_every_worker_s_history_under_its_root(
        served: tuple[LiveServer, Path], spike: int) -> None:
    server, _ = served
    workers = all_workers(server)
    started = time.monotonic()
    response = fresh_get(server, "/profile?last=30&scope=all")
    assert time.monotonic() - started < 5.0  # no window run anywhere
    assert response.status_code == 200
    assert "X-Profile-Missing-Workers" not in response.headers
    roots = {line.split(";", 1)[0] for line in response.text.splitlines()}
    assert roots == {f"worker {pid}" for pid in workers}
    assert crunch_samples(response.text, f"worker {spike};") >= 10, response.text
    assert crunch_samples(response.text) == crunch_samples(response.text, f"worker {spike};")


def test_scope_all_names_a_stopped_worker_and_answers_with_the_others(
        served: tuple[LiveServer, Path], spike: int) -> None:
    server, _ = served
    workers = all_workers(server)
    stopped = min(workers - {spike})
    freeze(stopped)
    try:
        def answer() -> requests.Response | None:
            response = fresh_get(server, "/profile?last=30&scope=all")
            return response if int(response.headers["X-Worker-Pid"]) != stopped else None

        response = wait_until(answer, 20, interval=0.01, message="a live worker answering")
        assert isinstance(response, requests.Response) and response.status_code == 200
        assert f"{stopped} (" in response.headers["X-Profile-Missing-Workers"]
        roots = {line.split(";", 1)[0] for line in response.text.splitlines()}
        assert roots == {f"worker {pid}" for pid in workers - {stopped}}
    finally:
        os.kill(stopped, signal.SIGCONT)
