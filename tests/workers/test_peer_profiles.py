"""/profile and /memory against real gunicorn: every worker with scope=all, a stopped one
named, one window at a time across workers, and an idle demo with idle=false."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import LiveServer, running_server, wait_until

# slow, and the same on every pin of gunicorn and prometheus_client: tox.ini runs it in
# the py311, py313 and min envs only
pytestmark = [pytest.mark.server, pytest.mark.slow]

# waits, written out here rather than taken from the code under test
WAITING_LEAVES = ("threading:Condition.wait", "threading:Thread._wait_for_tstate_lock",
                  "selectors:EpollSelector.select", "selectors:PollSelector.select",
                  "concurrent.futures.thread:_worker", "threading:Event.wait",
                  # common_api's own background threads
                  "common_api.peer_channel.server:PeerServer._accept_loop")


def get(server: LiveServer, path: str, **params: str) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=60,
                        headers={"Connection": "close"})


def worker_pids(server: LiveServer, count: int) -> set[int]:
    def seen() -> set[int] | None:
        pids = {entry["pid"] for entry in get(server, "/periodic-threads").json()["threads"]}
        return pids if len(pids) == count else None

    pids = wait_until(seen, 30, interval=0.2, message=f"{count} workers publishing")
    assert isinstance(pids, set)
    return pids


def folded(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


@pytest.fixture(scope="module")
def three_workers(tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[LiveServer, set[int]]]:
    """One 3-worker demo server for the module (a stopped worker is resumed at once)."""
    with running_server(tmp_path_factory.mktemp("three"), "--workers", "3") as server:
        yield server, worker_pids(server, 3)


def test_scope_all_returns_the_stacks_of_all_three_workers(
        three_workers: tuple[LiveServer, set[int]]) -> None:
    server, pids = three_workers
    response = get(server, "/profile", seconds="1", scope="all")
    assert response.status_code == 200, response.text
    roots = {names[0] for names, _ in folded(response.text)}
    assert roots == {f"worker {pid}" for pid in pids}
    assert "X-Profile-Missing-Workers" not in response.headers
    # each worker's stacks go on with that worker's own threads
    threads = {tuple(names[:2]) for names, _ in folded(response.text)}
    for pid in pids:
        assert (f"worker {pid}", "MainThread") in threads


def test_scope_all_names_a_stopped_worker_and_answers_without_it(
        three_workers: tuple[LiveServer, set[int]]) -> None:
    server, pids = three_workers
    asker = int(get(server, "/env").headers["X-Worker-Pid"])
    stopped = min(pids - {asker})
    os.kill(stopped, signal.SIGSTOP)
    try:
        def profile_elsewhere() -> requests.Response | None:
            response = get(server, "/profile", seconds="0.5", scope="all", format="json")
            return response if int(response.headers["X-Worker-Pid"]) != stopped else None

        response = wait_until(profile_elsewhere, 60, message="a profile answered")
        assert isinstance(response, requests.Response)
    finally:
        os.kill(stopped, signal.SIGCONT)
    body = response.json()
    assert set(body["missing_workers"]) == {str(stopped)}
    assert "stopped by SIGSTOP" in body["missing_workers"][str(stopped)]  # named at once
    assert f"{stopped} (" in response.headers["X-Profile-Missing-Workers"]
    roots = {body["frames"][stack["frames"][0]]["name"] for stack in body["stacks"]}
    assert roots == {f"worker {pid}" for pid in pids - {stopped}}


def test_memory_scope_all_reports_every_worker(
        three_workers: tuple[LiveServer, set[int]]) -> None:
    server, pids = three_workers
    response = get(server, "/memory", seconds="0.5", scope="all", format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {report["pid"] for report in body["workers"]} == pids
    assert body["missing_workers"] == {}
    text = get(server, "/memory", seconds="0.3", scope="all").text
    assert set(map(int, re.findall(r"^=== Worker (\d+) ===$", text, re.M))) == pids


def test_one_profile_at_a_time_across_the_workers_of_a_server(
        start_server: Callable[..., LiveServer]) -> None:
    server = start_server("--workers", "2")
    pids = worker_pids(server, 2)
    first: list[requests.Response] = []
    runner = threading.Thread(target=lambda: first.append(get(server, "/profile", seconds="6")))
    runner.start()
    refused_by: set[int] = set()
    try:
        wait_until(lambda: "common-api-profiler" in get(server, "/threads", scope="all").text,
                   5, interval=0.05, message="the first profile running")

        def refused_everywhere() -> bool:
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: get(server, "/profile", seconds="1"),
                                        range(4)))
            for answer in answers:
                assert answer.status_code == 429, answer.text
                assert "Another profile is running" in answer.text
                refused_by.add(int(answer.headers["X-Worker-Pid"]))
            return refused_by == pids

        wait_until(refused_everywhere, 4, interval=0.05,
                   message="both workers refusing a second profile")
    finally:
        runner.join(60)
    assert first and first[0].status_code == 200


def test_an_idle_demo_profile_with_idle_false_has_no_waiting_frames(
        live_server: LiveServer) -> None:
    everything = folded(get(live_server, "/profile", seconds="2", name="").text)
    busy = folded(get(live_server, "/profile", seconds="2", idle="false").text)
    total = sum(count for _, count in everything)
    waiting = sum(count for names, count in everything if names[-1] in WAITING_LEAVES)
    assert waiting >= 0.7 * total  # the demo is idle: most samples are waits
    assert not [names for names, _ in busy if names[-1] in WAITING_LEAVES]
    assert sum(count for _, count in busy) < 0.2 * total
