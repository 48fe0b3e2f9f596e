"""``/threads?scope=all`` on real gunicorn (3 workers of tests/apps/multi_app.py): it never
harms a worker, lists every live worker, counts every thread, writes nothing to disk and
signals nothing but the server's own workers."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from support import LiveServer, freeze, wait_until

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKERS = 3
DUMPS_UNDER_LOAD = 100
HEADER = re.compile(r"^=== Worker (\d+)(?: \(([a-z ]+)\))? ===$", re.M)
CRASH = re.compile(r"was sent SIG\w+|terminated due to signal|WORKER TIMEOUT")


def fresh_get(server: LiveServer, path: str, **params: str) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=30,
                        headers={"Connection": "close"})


def workers_of(server: LiveServer) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def listed(text: str) -> dict[int, str]:
    return {int(pid): source for pid, source in HEADER.findall(text)}


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    live = start_server("--app", "multi_app:app", "--workers", str(WORKERS),
                        env={"PYTHONPATH": path})
    wait_until(lambda: len(workers_of(live)) == WORKERS, 30, message="3 workers")

    def every_worker_dumpable() -> bool:
        response = fresh_get(live, "/threads", scope="all")
        return len(listed(response.text)) == WORKERS

    wait_until(every_worker_dumpable, 30, interval=0.2, message="every worker's runtime")
    return live


def state_dir(server: LiveServer) -> Path:
    return Path(fresh_get(server, "/state-dir").json()["state_dir"])


@contextlib.contextmanager
def load(server: LiveServer) -> Iterator[None]:
    """Keep every worker busy on a host route (wrk if installed, else client threads)."""
    if shutil.which("wrk"):
        proc = subprocess.Popen(["wrk", "-t2", "-c8", "-d600s", server.url + "/pid"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            yield
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        return
    stop = threading.Event()

    def hammer() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                with contextlib.suppress(requests.RequestException):
                    session.get(server.url + "/pid", timeout=10)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def test_scope_all_dumps_under_load_crash_no_worker_and_list_every_worker(
        server: LiveServer) -> None:
    before = workers_of(server)
    incomplete = []
    with load(server):
        for _ in range(DUMPS_UNDER_LOAD):
            response = fresh_get(server, "/threads", scope="all")
            assert response.status_code == 200
            if set(listed(response.text)) != before:
                incomplete.append(sorted(listed(response.text)))
    crashes = CRASH.findall(server.log())
    assert crashes == [], f"workers crashed during the dumps: {crashes}"
    assert workers_of(server) == before
    assert incomplete == []


def test_a_process_that_is_not_a_worker_is_never_signalled(server: LiveServer) -> None:
    stranger = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; time.sleep(60)"])
    try:
        response = fresh_get(server, "/threads", scope="all")
        assert response.status_code == 200
        assert stranger.pid not in listed(response.text)
        time.sleep(0.5)
        assert stranger.poll() is None, "scope=all killed a process that is not a worker"
    finally:
        stranger.kill()
        stranger.wait(10)


def test_a_worker_with_more_than_100_threads_is_listed_and_counted_whole(
        server: LiveServer) -> None:
    busy = fresh_get(server, "/spawn", n="150").json()["pid"]

    def answered_elsewhere() -> requests.Response | None:
        response = fresh_get(server, "/threads", scope="all", format="json")
        return response if int(response.headers["X-Worker-Pid"]) != busy else None

    body = wait_until(answered_elsewhere, 30, message="a dump answered by another worker")
    assert isinstance(body, requests.Response)
    workers = {entry["pid"]: entry for entry in body.json()["workers"]}
    entry = workers[busy]
    assert entry["source"] == "python"
    idle = [thread for thread in entry["threads"] if thread["name"].startswith("idle-")]
    assert len(idle) == 150
    assert entry["total"] == len(entry["threads"]) > 150
    assert body.json()["total"] == sum(worker["total"] for worker in workers.values())

    text = fresh_get(server, "/threads", scope="all").text
    total = int(re.search(r"^Total threads: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert total == text.count("\nThread: ") + text.startswith("Thread: ")
    assert total > 150 + 2 * 5


def test_repeated_dumps_write_nothing_to_disk_and_leak_no_descriptor(
        server: LiveServer) -> None:
    root = state_dir(server)
    workers = workers_of(server)

    def files() -> set[str]:
        return {str(path.relative_to(root)) for path in root.rglob("*")
                if "prometheus" not in path.parts and path.parent.name != "workers"}

    def descriptors() -> dict[int, int]:
        return {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in workers}

    for _ in range(5):
        fresh_get(server, "/threads", scope="all")
    before, fds = files(), descriptors()
    for _ in range(30):
        assert fresh_get(server, "/threads", scope="all").status_code == 200
    assert files() == before
    assert not (root / "dumps").exists()
    wait_until(lambda: all(descriptors()[pid] <= fds[pid] + 2 for pid in workers), 10,
               message="every worker's descriptors back to where they were")


def test_a_stopped_worker_is_listed_as_stopped(server: LiveServer) -> None:
    victim = sorted(workers_of(server))[0]
    freeze(victim)
    try:
        def answered_elsewhere() -> str | None:
            response = fresh_get(server, "/threads", scope="all")
            return response.text if int(response.headers["X-Worker-Pid"]) != victim else None

        text = wait_until(answered_elsewhere, 30, message="a dump answered by another worker")
        assert isinstance(text, str)
        assert listed(text)[victim] == "stopped"
        assert f"\nWorkers: {WORKERS}\n" in text
    finally:
        os.kill(victim, signal.SIGCONT)


def test_after_a_dump_a_level_set_a_profile_and_a_reset_no_fifo_or_request_file_is_left(
        server: LiveServer) -> None:
    root = state_dir(server)
    assert fresh_get(server, "/threads", scope="all").status_code == 200
    assert fresh_get(server, "/loglevel", logger_name="multi.app", level="INFO").ok
    assert fresh_get(server, "/profile", seconds="0.2", scope="all").status_code == 200
    assert fresh_get(server, "/memory", seconds="0.2", scope="all").status_code == 200
    assert requests.post(server.url + "/metrics/reset", timeout=30).status_code == 200
    fifos = [path for path in root.rglob("*") if path.is_fifo()]
    assert fifos == []
    top = {path.name for path in root.iterdir()}
    assert top <= {"prometheus", "workers", "loglevels.json", "loglevels.lock",
                   "metrics-baseline.json", "metrics-baseline.json.lock", "metrics.lock",
                   "profile.lock", "memory.lock"}, top
    assert not {"dumps", "level-sync", "windows"} & top
