"""Adopting common_api changes nothing it should not, and every half-done setup is named
(issue 22), against real gunicorn with several workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import LiveServer, launch_gunicorn, wait_ready, wait_until

APPS = Path(__file__).resolve().parent / "apps"
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def half_hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The adopting host under a config that calls prepare_state() and post_fork only."""
    directory = tmp_path_factory.mktemp("adoption")
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    server = launch_gunicorn(directory, "-c", str(APPS / "half_hooks_conf.py"),
                             "adopting_host:app", env={"PYTHONPATH": path})
    try:
        yield wait_ready(server, "/work")
    finally:
        server.stop()


def _log_line(server: LiveServer, text: str) -> list[str]:
    return [line for line in server.log().splitlines() if text in line]


def test_each_missing_hook_is_named_once_with_what_it_costs(half_hooked: LiveServer) -> None:
    for hook, cost in (("post_worker_init", "see only the answering worker"),
                       ("child_exit", "not folded into the archive"),
                       ("on_exit", "not removed at exit")):
        wait_until(lambda hook=hook: _log_line(half_hooked, f"{hook} hook does not call"), 30,
                   message=f"a warning about {hook}")
        lines = _log_line(half_hooked, f"{hook} hook does not call")
        assert len(lines) == 1 and "WARNING" in lines[0] and cost in lines[0], lines
    assert not _log_line(half_hooked, "post_fork hook does not call")


def test_start_up_checks_reach_the_log_through_the_host_s_logging_config(
        half_hooked: LiveServer) -> None:
    wait_until(lambda: _log_line(half_hooked, "COMMON_API_SCRIPT_TIMEOUTT"), 30,
               message="the unknown-key warning")
    lines = _log_line(half_hooked, "COMMON_API_SCRIPT_TIMEOUTT")
    assert len(lines) == 1 and "WARNING" in lines[0]
    assert "did you mean COMMON_API_SCRIPT_TIMEOUT" in lines[0]
    listed = half_hooked.get("/loglevel", params={"logger_name": "common_api",
                                                  "format": "json"}).json()
    assert listed["disabled"] is True  # the host's dictConfig did it, and it is shown


def test_without_post_worker_init_health_counts_every_live_worker_and_names_the_unlisted(
        half_hooked: LiveServer) -> None:
    """Workers whose runtime common_api's post_worker_init never started are neither
    "booting" for ever nor left out: health counts them and names each one, and /metrics
    names them among the workers its live part is missing."""
    pids: set[str] = set()

    def settled() -> bool:
        response = half_hooked.get("/periodic-threads-health", timeout=5)
        pids.add(response.headers["X-Worker-Pid"])
        body = response.json()
        named = {problem["pid"] for problem in body.get("worker_problems", [])
                 if "post_worker_init" in problem["reason"]}
        return body["workers"] == 3 and "booting" not in body and len(named) == 2

    wait_until(settled, 60, interval=0.2, message="health counting 3 workers, 2 named")
    body = half_hooked.get("/periodic-threads-health", timeout=5).json()
    assert body["healthy"] is True, body  # a setup to fix, not a worker in trouble
    headers: list[str] = []

    def scrape_names_them() -> bool:  # each worker's view is at most a second old
        scrape = half_hooked.get("/metrics", timeout=10)
        assert scrape.status_code == 200
        headers.append(scrape.headers.get("X-Missing-Workers", ""))
        return headers[-1].count("post_worker_init in this worker") == 2

    wait_until(scrape_names_them, 30, interval=0.2,
               message="a scrape naming both unlisted workers")


def test_a_worker_started_without_post_worker_init_says_so_through_the_host_s_logging(
        half_hooked: LiveServer) -> None:
    """The worker's own line, once its runtime starts on a request thread, reaches the log
    at WARNING although the host's dictConfig disabled common_api's loggers."""
    half_hooked.get("/periodic-threads-health", timeout=5)
    wait_until(lambda: _log_line(half_hooked, "started on a request thread"), 30,
               message="the worker's own warning")
    lines = _log_line(half_hooked, "started on a request thread")
    assert all("[WARNING]" in line and "post_worker_init" in line for line in lines), lines
    pids = [line.split("] [")[1] for line in lines]
    assert len(pids) == len(set(pids)), lines  # once per worker


def test_right_after_start_health_counts_booting_workers_instead_of_fewer_workers(
        tmp_path: Path) -> None:
    """Polled from the first answer on, health never reads as a smaller server: the workers
    that answer plus those still booting make 3."""
    from support import launch_server

    server = launch_server(tmp_path, "--workers", "3")
    seen: list[tuple[int, int]] = []
    try:
        def three_answering() -> bool:
            if server.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.log()}")
            try:
                body = server.get("/periodic-threads-health", timeout=2).json()
            except (OSError, ValueError):
                return False
            seen.append((body["workers"], body.get("booting", 0)))
            return body["workers"] == 3

        wait_until(three_answering, 60, interval=0.02, message="health from 3 workers")
    finally:
        server.stop()
    assert seen and all(workers + booting == 3 for workers, booting in seen), seen


def test_a_level_set_that_creates_a_logger_says_so_once(half_hooked: LiveServer) -> None:
    import requests

    with requests.Session() as session:  # one kept-alive connection: one worker answers both
        first = session.post(half_hooked.url + "/loglevel",
                             data={"logger_name": "kvctll", "level": "INFO"}, timeout=30)
        assert first.status_code == 200
        assert first.text.splitlines()[:2] == [
            "Set kvctll level to INFO (including all handlers)",
            "No logger named kvctll existed: it has been created"]
        again = session.post(half_hooked.url + "/loglevel",
                             data={"logger_name": "kvctll", "level": "DEBUG",
                                   "format": "json"}, timeout=30)
    assert again.status_code == 200
    assert first.headers["X-Worker-Pid"] == again.headers["X-Worker-Pid"]
    assert again.json()["created"] is False
