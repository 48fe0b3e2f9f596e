"""The flight recorder in one process: ``/profile?last=`` answers at once from the history
(every format, ``name`` and ``idle=false`` as for a window), refuses bad or out-of-range
``last`` values with a 400 that names the problem, and holds the history to its memory
budget whatever the stacks look like."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common_api import bp
from common_api.services.recorder import HZ, SampleHistory, start_recorder
from common_api.services.recorder.history import current_frames, thread_names


def crunch_numbers(seconds: float) -> int:
    total = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for value in range(2000):
            total += value * value % 7
    return total


def app_with(**config: object) -> Flask:
    app = Flask("recorder_test")
    app.config.update(config)
    app.register_blueprint(bp)
    return app


@pytest.fixture(scope="module")
def spiked() -> Iterator[FlaskClient]:
    """An app whose process had a 1 s CPU spike in thread ``cruncher`` that ended 1 s ago."""
    client = app_with().test_client()
    cruncher = threading.Thread(target=crunch_numbers, args=(1.0,), name="cruncher")
    cruncher.start()
    cruncher.join()
    time.sleep(1.0)  # the scenario itself: the spike ended a second before anyone looks
    yield client


def crunch_samples(collapsed: str) -> int:
    return sum(int(line.rsplit(" ", 1)[1]) for line in collapsed.splitlines()
               if "crunch_numbers" in line)


def test_last_answers_at_once_from_the_history_with_span_and_count(
        spiked: FlaskClient) -> None:
    started = time.monotonic()
    response = spiked.get("/profile?last=30")
    assert time.monotonic() - started < 1.0  # no window is run
    assert response.status_code == 200
    assert crunch_samples(response.text) >= 5  # 1 s at 10 Hz, however busy the machine
    assert response.headers["X-Profile-Source"] == "history"
    assert int(response.headers["X-Profile-Samples"]) >= crunch_samples(response.text)
    assert 1.5 <= float(response.headers["X-Profile-Span-Seconds"]) <= 30
    assert response.headers["X-Profile-Span-Start"] < response.headers["X-Profile-Span-End"]


@pytest.mark.parametrize("fmt", ["json", "speedscope", "svg"])
def test_every_format_of_a_window_answers_from_the_history(spiked: FlaskClient,
                                                            fmt: str) -> None:
    response = spiked.get(f"/profile?last=30&format={fmt}")
    assert response.status_code == 200
    assert "crunch_numbers" in response.text


def test_name_and_idle_false_select_as_for_a_window(spiked: FlaskClient) -> None:
    named = spiked.get("/profile?last=30&name=CRUNCH").text
    assert named and all(line.startswith("cruncher;") for line in named.splitlines())
    busy = spiked.get("/profile?last=30&idle=false").text
    assert crunch_samples(busy) == crunch_samples(spiked.get("/profile?last=30").text)
    # the main thread of pytest waited in join/wait during the spike: idle, dropped
    assert "threading:Thread.join" not in busy


@pytest.mark.parametrize(("query", "named"), [
    ("last=abc", "Invalid last: abc"),
    ("last=0", "Invalid last: 0"),
    ("last=-5", "Invalid last: -5"),
    ("last=nan", "Invalid last: nan"),
    ("last=inf", "Invalid last: inf"),
    ("last=", "Invalid last: "),
    ("last=601", "beyond the 600 seconds of history kept (COMMON_API_PROFILE_HISTORY_SECONDS)"),
    ("last=5&seconds=2", "give last or seconds"),
    ("last=5&hz=50", "give last or hz"),
])
def test_a_bad_last_is_400_naming_the_problem(spiked: FlaskClient, query: str,
                                              named: str) -> None:
    response = spiked.get(f"/profile?{query}")
    assert response.status_code == 400
    assert named in response.text


def test_last_beyond_a_shorter_history_names_that_limit() -> None:
    client = app_with(COMMON_API_PROFILE_HISTORY_SECONDS=60).test_client()
    response = client.get("/profile?last=61")
    assert response.status_code == 400
    assert "beyond the 60 seconds of history kept" in response.text
    assert client.get("/profile?last=60").status_code == 200


def test_with_the_history_off_last_is_400_saying_so() -> None:
    client = app_with(COMMON_API_PROFILE_HISTORY_SECONDS=0).test_client()
    response = client.get("/profile?last=5")
    assert response.status_code == 400
    assert "no history is kept (COMMON_API_PROFILE_HISTORY_SECONDS is 0)" in response.text


def test_the_recorder_runs_once_per_process_and_keeps_the_longest_history() -> None:
    first = start_recorder(60)
    assert first is not None and start_recorder(900) is first and start_recorder(0) is first
    assert first.seconds >= 900
    names = [t.name for t in threading.enumerate()]
    assert names.count("common-api-recorder") == 1


def _deep(depth: int, ready: threading.Event, done: threading.Event) -> None:
    if depth:
        _deep(depth - 1, ready, done)
    else:
        ready.set()
        done.wait()


def test_the_history_keeps_to_its_memory_budget_with_many_distinct_stacks() -> None:
    """Threads at every depth from 0 to 199 give 200 distinct stacks each tick under new
    thread names; a 64 KiB budget holds, by compaction, then by shortening the span."""
    budget = 64 * 1024
    history = SampleHistory(600, HZ, budget=budget)
    done = threading.Event()
    threads = []
    try:
        for depth in range(0, 200, 4):
            ready = threading.Event()
            thread = threading.Thread(target=_deep, args=(depth, ready, done),
                                      name=f"deep-{depth}")
            thread.start()
            ready.wait(10)
            threads.append(thread)
        own = threading.get_ident()
        for tick in range(300):
            names = {ident: f"{name}-{tick}" for ident, name in thread_names().items()}
            history.record(current_frames(), names, own, tick / HZ, time.time())
            assert history.memory_bytes <= budget * 1.05
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    profile, span = history.profile(600, 300 / HZ, time.time())
    assert 0 < span.ticks < 300  # the oldest went first
    assert profile.samples > 0


def test_a_forked_child_starts_an_empty_history(spiked: FlaskClient) -> None:
    """What a worker forked from a --preload master gets: its own, empty history, served
    by the app set up before the fork, and a recorder thread sampling it."""
    assert crunch_samples(spiked.get("/profile?last=30").text) >= 5
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its app answers, then leave at once
        try:
            time.sleep(0.5)  # a few ticks of its own
            answer = spiked.get("/profile?last=600")
            sampling = any(t.name == "common-api-recorder" and t.is_alive()
                           for t in threading.enumerate())
            os.write(write, f"{crunch_samples(answer.text)} {answer.headers['X-Profile-Samples']} "
                            f"{sampling}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        inherited, samples, sampling = answer.read().split()
    os.waitpid(pid, 0)
    assert inherited == "0"  # the parent's spike is not the child's
    assert int(samples) > 0 and sampling == "True"  # the child samples itself


def test_scope_all_puts_the_history_under_its_worker_root(spiked: FlaskClient) -> None:
    response = spiked.get("/profile?last=30&scope=all&name=cruncher")
    assert response.status_code == 200
    assert crunch_samples(response.text) >= 5
    assert all(line.startswith(f"worker {os.getpid()};cruncher;")
               for line in response.text.splitlines())


def test_a_worker_answers_a_history_request_it_can_read_and_refuses_a_bad_one(
        spiked: FlaskClient) -> None:
    from common_api.workers.peer_histories import answer_history
    from common_api.workers.peer_profiles import profile_from_dict

    part = profile_from_dict(answer_history({"last": 30, "name": "cruncher",
                                             "drop_idle": True}))
    assert part.samples >= 5
    assert all(part.frames[stack[0]].name == "cruncher" for stack in part.stacks)
    for bad in (None, [], {"last": "30"}, {"last": True}, {"last": 0}, {"last": 30, "name": 1}):
        with pytest.raises(ValueError):
            answer_history(bad)
