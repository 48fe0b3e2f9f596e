"""/tasks?scope=all on real gunicorn with three workers, each running the issue's storage
loop in a thread (``tests/apps/async_host.py``): every worker's tasks over the peer
channel, in a section per worker; a stopped worker named, not waited for."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from client.helpers import run_cli
from support import LiveServer, freeze, launch_server, wait_until

pytestmark = pytest.mark.server

TESTS = Path(__file__).resolve().parents[1]
WORKERS = 3


def fresh_get(server: LiveServer, path: str) -> requests.Response:
    return requests.get(server.url + path, headers={"Connection": "close"}, timeout=30)


def every_worker(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = fresh_get(server, "/tasks?scope=all&format=json").json()
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS / "apps"), str(TESTS),
                                                      os.environ.get("PYTHONPATH")]))}
    server = launch_server(tmp_path_factory.mktemp("tasks"), "--app", "async_host:app",
                           "--workers", str(WORKERS), env=env)
    try:
        def all_answer() -> bool:
            if server.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.log()}")
            try:
                answer = fresh_get(server, "/tasks?scope=all&format=json")
            except requests.RequestException:
                return False  # booting: refused, reset, timed out
            assert answer.status_code != 404, answer.text  # no /tasks at all
            if answer.status_code != 200:
                return False
            workers = answer.json()["workers"]
            return len(workers) == WORKERS and all(w["answered"] for w in workers)

        wait_until(all_answer, 60, interval=0.2, message=f"{WORKERS} workers answering")
        yield server
    finally:
        server.stop()


def test_every_workers_tasks_in_a_section_each(server: LiveServer) -> None:
    body = every_worker(server)
    pids = [worker["pid"] for worker in body["workers"]]
    assert len(set(pids)) == WORKERS
    for worker in body["workers"]:
        (loop,) = worker["loops"]
        assert loop["thread"] == "storage-loop"
        fetch = next(task for task in loop["tasks"] if task["name"] == "fetch-chunk-42")
        assert [f["function"] for f in fetch["chain"]] == [
            "fetch_from_remote", "remote_get", "sleep"]
    assert body["total"] == sum(worker["total"] for worker in body["workers"])
    text = fresh_get(server, "/tasks?scope=all&name=fetch-chunk").text
    for pid in pids:
        assert f"=== Worker {pid} (" in text
    assert text.count("Task: 'fetch-chunk-42' (pending") == WORKERS
    assert f"Workers: {WORKERS}\nTotal tasks: {WORKERS}\n" in text


def test_group_across_workers_names_each_task_by_pid(server: LiveServer) -> None:
    body = fresh_get(server, "/tasks?scope=all&group=true&name=consumer&format=json").json()
    (group,) = body["groups"]
    assert group["count"] == 3 * WORKERS
    pids = {int(name.split("@")[1]) for name in group["names"]}
    assert len(pids) == WORKERS


def test_cli_tasks_prints_the_listing_and_its_options_reach_the_server(
        server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "tasks", server.url, "--name", "FETCH")
    assert result.code == 0, result.err
    assert result.out.startswith("--- Loop ") and "run by thread 'storage-loop'" in result.out
    assert "  fetch_from_remote -> remote_get -> sleep\n" in result.out
    assert result.out.endswith("=== Task Summary ===\nLoops: 1\nTotal tasks: 1\n")
    grouped = run_cli(capsys, "tasks", server.url, "--all-workers", "--group", "--name",
                      "consumer", "--json")
    assert grouped.code == 0, grouped.err
    (group,) = json.loads(grouped.out)["groups"]
    assert group["count"] == 3 * WORKERS


def test_a_stopped_worker_is_named_at_once(server: LiveServer) -> None:
    pids = [worker["pid"] for worker in every_worker(server)["workers"]]
    stopped = pids[-1]
    freeze(stopped)
    try:
        started = time.monotonic()
        answer = fresh_get(server, "/tasks?scope=all&format=json")
        elapsed = time.monotonic() - started
        text = fresh_get(server, "/tasks?scope=all").text
    finally:
        os.kill(stopped, signal.SIGCONT)
    assert elapsed < 2.0, elapsed
    workers = {worker["pid"]: worker for worker in answer.json()["workers"]}
    assert workers[stopped] == {"pid": stopped, "answered": False,
                                "note": "stopped by SIGSTOP or a debugger"}
    assert all(w["answered"] for pid, w in workers.items() if pid != stopped)
    assert (f"=== Worker {stopped} (no answer) ===\n"
            "(no tasks: stopped by SIGSTOP or a debugger)") in text
    assert f"Missing worker {stopped}: stopped by SIGSTOP or a debugger" in text
