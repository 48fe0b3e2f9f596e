"""Issue 9, part 3: a level set is all or nothing, and read-your-writes, over real gunicorn.

Each test serves ``tests/apps/multi_app.py`` with 3 workers. ``/pid`` is a host route: it
answers the effective level of ``multi.app`` as that worker's own code sees it, and applies
nothing; ``/level-history`` answers when that worker's host handler had its level set. So
"stale" below means a worker's host code still at the old level after the set answered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from support import LiveServer, delete_tree, freeze, running_server, wait_until

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKERS = 3
LOGGER = "multi.app"
INITIAL = "WARNING"
CYCLE = ("DEBUG", "INFO", "ERROR", "WARNING")
TRIALS = 20
FAN_OUT = 6  # host reads in flight at once, on fresh connections, to reach every worker


def fresh_get(server: LiveServer, path: str, **params: str) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=20,
                        headers={"Connection": "close"})


def pid_of(response: requests.Response) -> int:
    return int(response.headers["X-Worker-Pid"])


def first_reading_per_worker(server: LiveServer, path: str, pids: set[int],
                             timeout: float = 20.0) -> dict[int, dict[str, Any]]:
    """GET ``path`` on fresh connections until every worker of ``pids`` answered; the first
    answer of each (requests go out in order, FAN_OUT at a time)."""
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(FAN_OUT) as pool:
        while not pids <= set(seen):
            assert time.monotonic() < deadline, f"only {sorted(seen)} of {sorted(pids)} answered"
            for response in pool.map(lambda _: fresh_get(server, path), range(FAN_OUT)):
                assert response.status_code == 200, response.text
                body = response.json()
                # host routes name their worker in the body, the blueprint's in a header
                seen.setdefault(body["pid"] if "pid" in body else pid_of(response), body)
    return {pid: seen[pid] for pid in pids}


def host_levels(server: LiveServer, pids: set[int]) -> dict[int, str]:
    return {pid: body["level"] for pid, body in first_reading_per_worker(server, "/pid",
                                                                        pids).items()}


def live_workers(server: LiveServer) -> set[int]:
    """The pids of the server's workers, once all of them answer (their runtimes started)."""
    def three() -> set[int] | None:
        seen: set[int] = set()
        with ThreadPoolExecutor(FAN_OUT) as pool:
            for _ in range(10):
                seen |= {pid_of(r) for r in pool.map(
                    lambda _: fresh_get(server, "/loglevel", logger_name=LOGGER),
                    range(FAN_OUT))}
        return seen if len(seen) == WORKERS else None

    pids = wait_until(three, 30, message=f"{WORKERS} workers answering")
    assert isinstance(pids, set)
    return pids


def pid_words(text: str) -> list[str]:
    """The numbers in ``text`` (the pids a level-set answer names)."""
    return [word.strip(",.;:()") for word in text.split() if word.strip(",.;:()").isdigit()]


def set_level(server: LiveServer, level: str, as_json: bool = True,
              **extra: str) -> requests.Response:
    params = {"logger_name": LOGGER, "level": level, **extra}
    if as_json:
        params["format"] = "json"
    return fresh_get(server, "/loglevel", **params)


def server_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(APPS),
                                                        os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("coherence"), "--app", "multi_app:app",
                        "--workers", str(WORKERS), env=server_env()) as live:
        yield live


@pytest.fixture
def workers(server: LiveServer) -> Iterator[set[int]]:
    pids = live_workers(server)
    yield pids
    for pid in pids:  # no test leaves a worker stopped
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# --------------------------------------------------------------------------- read-your-writes


def test_every_worker_applies_the_level_before_the_set_answers(
        server: LiveServer, workers: set[int]) -> None:
    stale: list[tuple[int, str, dict[int, str]]] = []
    named_trials = 0
    for trial in range(TRIALS):
        level = CYCLE[trial % len(CYCLE)]
        answer = set_level(server, level, as_json=trial % 2 == 0)
        assert answer.status_code == 200, answer.text
        if trial % 2 == 0:
            unacknowledged = set(answer.json().get("unacknowledged_workers", []))
        else:
            assert answer.text.splitlines()[0] == \
                f"Set {LOGGER} level to {level} (including all handlers)"
            note = answer.text.partition("\n")[2]
            unacknowledged = set(map(int, pid_words(note)))
        named_trials += bool(unacknowledged)
        seen = host_levels(server, workers)
        wrong = {pid: seen_level for pid, seen_level in seen.items()
                 if seen_level != level and pid not in unacknowledged}
        if wrong:
            stale.append((trial, level, wrong))
    assert not stale, f"stale host reads after the set answered (trial, level, pid: seen): " \
                      f"{stale}"
    # naming a worker is for one that is really stuck, not a way around the guarantee
    assert named_trials <= TRIALS // 4, f"{named_trials} of {TRIALS} sets named a worker"


def revert_time(answer: requests.Response) -> float:
    revert = answer.json()["revert"]
    return datetime.fromisoformat(revert["at"]).timestamp()


def test_timed_level_holds_everywhere_at_once_and_reverts_everywhere_at_once(
        server: LiveServer, workers: set[int]) -> None:
    assert set_level(server, INITIAL).status_code == 200
    lags: list[dict[int, float]] = []
    for _ in range(4):
        answer = set_level(server, "DEBUG", duration="1")
        assert answer.status_code == 200, answer.text
        assert answer.json()["revert"]["level"] == INITIAL
        assert answer.json().get("unacknowledged_workers", []) == []
        assert host_levels(server, workers) == dict.fromkeys(workers, "DEBUG")
        due = revert_time(answer)

        def revert_lags(due: float = due) -> dict[int, float] | None:
            """Seconds from the revert's time to each worker's revert, once all reverted."""
            histories = first_reading_per_worker(server, "/level-history", workers)
            lag = {}
            for pid, body in histories.items():
                reverted = [at for at, level in body["changes"]
                            if level == INITIAL and at > due - 1]
                if not reverted:
                    return None
                lag[pid] = reverted[0] - due
            return lag

        lag = wait_until(revert_lags, 10, interval=0.2, message="every worker reverted")
        assert isinstance(lag, dict)
        lags.append(lag)
        assert host_levels(server, workers) == dict.fromkeys(workers, INITIAL)
    # every worker carries out the revert at its time, not at its next poll; one trial
    # may be late on a loaded machine (the precise figures are in the benchmark)
    prompt = [lag for lag in lags if max(lag.values()) <= 0.15]
    assert len(prompt) >= 3, f"revert lag per worker, seconds: {lags}"


def test_frozen_worker_is_named_in_the_answer_and_applies_the_level_when_it_runs_again(
        server: LiveServer, workers: set[int]) -> None:
    assert set_level(server, INITIAL).status_code == 200
    frozen = min(workers)
    others = workers - {frozen}
    freeze(frozen)
    try:
        started = time.monotonic()
        answer = set_level(server, "DEBUG")
        elapsed = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["unacknowledged_workers"] == [frozen]
        assert answer.json()["unacknowledged_reasons"] == {
            str(frozen): "stopped by SIGSTOP or a debugger"}
        assert elapsed < 10, f"the set took {elapsed:.1f}s"
        text = set_level(server, "INFO", as_json=False)
        assert text.status_code == 200
        first, note = text.text.split("\n", 1)
        assert first == f"Set {LOGGER} level to INFO (including all handlers)"
        assert str(frozen) in pid_words(note) and not set(map(str, others)) & set(
            pid_words(note)), note
        assert host_levels(server, others) == dict.fromkeys(others, "INFO")
    finally:
        os.kill(frozen, signal.SIGCONT)

    def frozen_caught_up() -> bool:
        return host_levels(server, {frozen}) == {frozen: "INFO"}

    wait_until(frozen_caught_up, 5, message=f"worker {frozen} at INFO after SIGCONT")
    again = set_level(server, INITIAL)
    assert again.json()["unacknowledged_workers"] == []


def test_stuck_worker_is_named_after_the_deadline_and_applies_the_level_when_free(
        server: LiveServer, workers: set[int], tmp_path: Path) -> None:
    assert set_level(server, INITIAL).status_code == 200
    marker = tmp_path / "blocked"
    with ThreadPoolExecutor(1) as pool:
        # holds the GIL in a C call: every thread of that worker is stuck, nothing stopped
        blocking = pool.submit(fresh_get, server, "/block", marker=str(marker), s="4")
        wait_until(marker.exists, 10, message="a worker blocking")
        stuck = int(marker.read_text())
        started = time.monotonic()
        answer = set_level(server, "ERROR")
        elapsed = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["unacknowledged_workers"] == [stuck]
        assert "busy or stuck" in answer.json()["unacknowledged_reasons"][str(stuck)]
        assert 0.9 <= elapsed < 10, f"the set took {elapsed:.2f}s, not about the 1 s bound"
        others = workers - {stuck}
        assert host_levels(server, others) == dict.fromkeys(others, "ERROR")
        assert blocking.result().status_code == 200
    wait_until(lambda: host_levels(server, {stuck}) == {stuck: "ERROR"}, 5,
               message=f"worker {stuck} at ERROR once free")


# --------------------------------------------------------------------------- all or nothing


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A read-only bind mount over ``directory``: new opens for writing fail with EROFS."""
    bound = run("mount", "--bind", str(directory), str(directory))
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    try:
        remounted = run("mount", "-o", "remount,bind,ro", str(directory))
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remounted.stderr.strip()}")
        yield
    finally:
        run("umount", str(directory))


def test_level_set_on_a_read_only_or_deleted_state_dir_reaches_every_worker_with_a_note(
        tmp_path: Path) -> None:
    with running_server(tmp_path, "--app", "multi_app:app", "--workers", str(WORKERS),
                        env=server_env()) as live:
        pids = live_workers(live)
        assert host_levels(live, pids) == dict.fromkeys(pids, INITIAL)
        state_root = Path(fresh_get(live, "/state-dir").json()["state_dir"])
        with read_only(state_root):
            text = set_level(live, "CRITICAL", as_json=False)
            assert text.status_code == 200, text.text
            assert text.headers["Content-Type"].startswith("text/plain")
            first, second = text.text.strip().split("\n")
            assert first == f"Set {LOGGER} level to CRITICAL (including all handlers)"
            assert second.startswith("Not saved for workers started later: ")
            assert "read-only" in second.lower(), text.text
            # every live worker applied it before the answer: read once from each
            assert host_levels(live, pids) == dict.fromkeys(pids, "CRITICAL")
            as_json = set_level(live, "WARNING")
            assert as_json.status_code == 200, as_json.text
            assert as_json.json()["unacknowledged_workers"] == []
            assert "read-only" in as_json.json()["not_saved_for_later_workers"].lower()
            assert host_levels(live, pids) == dict.fromkeys(pids, "WARNING")
        # the fault cleared: the next set is saved again
        done = set_level(live, "ERROR")
        assert done.status_code == 200, done.text
        assert done.json()["not_saved_for_later_workers"] is None
        assert host_levels(live, pids) == dict.fromkeys(pids, "ERROR")
        delete_tree(state_root)
        answer = set_level(live, "DEBUG")
        assert answer.status_code == 200, answer.text
        assert answer.json()["unacknowledged_workers"] == []
        assert host_levels(live, pids) == dict.fromkeys(pids, "DEBUG")
