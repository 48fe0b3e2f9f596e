"""Tests for common_api.periodic: scheduling, failure handling, status, registry, fork safety."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import select
import signal
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common_api.periodic import (
    IrrecoverableException,
    PeriodicThread,
    PeriodicThreadRegistry,
    ThreadLevel,
    ThreadRunSummary,
    create_periodic_thread,
)

INTERVAL = 0.05
LOGGER = "common_api.periodic"
STATUS_KEYS = {
    "name", "level", "is_running", "is_active", "last_run_time", "interval", "init_wait",
    "last_run_ago", "total_runs", "failed_runs", "success_rate", "last_summary",
}  # fmt: skip
SUMMARY_KEYS = {"timestamp", "duration_ms", "success", "message", "extra_info"}


def outcome(summary: ThreadRunSummary | None) -> tuple[bool, str] | None:
    """What a run reported, without the timing the framework adds."""
    return None if summary is None else (summary.success, summary.message)


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.005)  # the one sanctioned sleep: a short poll tick with a deadline
    return True


def noop() -> None:
    return None


MakeThread = Callable[..., PeriodicThread]


@pytest.fixture
def registry() -> Iterator[PeriodicThreadRegistry]:
    """The singleton registry, with every name a test added removed afterwards."""
    reg = PeriodicThreadRegistry.get_instance()
    before = {t.name for t in reg.threads()}
    yield reg
    for thread in reg.threads():
        if thread.name not in before:
            thread.stop(timeout=2.0)
            reg.unregister(thread.name)


@pytest.fixture
def make_thread(registry: PeriodicThreadRegistry) -> Iterator[MakeThread]:
    """Create threads with unique names (unregistered unless asked); stop them at teardown."""
    created: list[PeriodicThread] = []

    def factory(
        execute_fn: Callable[[], object] = noop,
        *,
        name: str | None = None,
        interval: float = INTERVAL,
        level: ThreadLevel | str = ThreadLevel.MEDIUM,
        init_wait: float = 0.0,
        register: bool = False,
    ) -> PeriodicThread:
        thread = create_periodic_thread(
            name or f"test-periodic-{uuid.uuid4().hex[:8]}",
            interval,
            execute_fn,
            level=level,
            init_wait=init_wait,
            auto_register=register,
        )
        created.append(thread)
        return thread

    yield factory
    for thread in created:
        assert thread.stop(timeout=2.0), f"{thread.name} did not stop at teardown"
        if registry.get(thread.name) is thread:
            registry.unregister(thread.name)


class Recorder:
    """An execute_fn that records when each run began and returns scripted results."""

    def __init__(self, *results: object, block: threading.Event | None = None) -> None:
        self.results = list(results)
        self.starts: list[float] = []
        self.block = block
        self.ran = threading.Event()

    def __call__(self) -> object:
        self.starts.append(time.monotonic())
        self.ran.set()
        if self.block is not None:
            self.block.wait(5.0)
        result = self.results.pop(0) if self.results else None
        if isinstance(result, BaseException):
            raise result
        return result

    def wait_runs(self, count: int, timeout: float = 3.0) -> bool:
        return wait_until(lambda: len(self.starts) >= count, timeout)


# --- levels, summaries, arguments -----------------------------------------------------------


def test_level_values_are_the_seed_strings() -> None:
    assert [level.value for level in ThreadLevel] == ["critical", "high", "medium", "low"]
    assert isinstance(ThreadLevel.CRITICAL, str) and ThreadLevel("high") is ThreadLevel.HIGH


def test_level_parse_case_insensitive_and_error_message() -> None:
    assert ThreadLevel.parse("CRITICAL") is ThreadLevel.CRITICAL
    assert ThreadLevel.parse("High") is ThreadLevel.HIGH
    assert ThreadLevel.parse("low") is ThreadLevel.LOW
    with pytest.raises(ValueError) as excinfo:
        ThreadLevel.parse("unknown")
    assert str(excinfo.value) == "Invalid level: unknown. Valid values: critical, high, medium, low"


def test_run_summary_defaults_and_to_dict_have_lmcache_keys() -> None:
    assert ThreadRunSummary().to_dict() == {"timestamp": 0.0, "duration_ms": 0.0,
                                            "success": True, "message": "", "extra_info": {}}
    summary = ThreadRunSummary(success=False, message="disk full", extra_info={"free": 0})
    assert summary.to_dict() == {"timestamp": 0.0, "duration_ms": 0.0, "success": False,
                                 "message": "disk full", "extra_info": {"free": 0}}
    summary.message = "disk fuller"  # mutable, as LMCache's dataclass
    assert summary.to_dict()["message"] == "disk fuller"


def test_run_summary_positional_order_is_lmcache_s() -> None:
    summary = ThreadRunSummary(12.5, 3.0, False, "late", {"lag": "2"})
    assert (summary.timestamp, summary.duration_ms, summary.success, summary.message,
            summary.extra_info) == (12.5, 3.0, False, "late", {"lag": "2"})


def test_run_summary_details_is_an_alias_of_extra_info() -> None:
    summary = ThreadRunSummary(success=False, message="disk full", details={"free": 0})
    assert summary.extra_info == summary.details == {"free": 0}
    summary.details["used"] = 9
    assert summary.extra_info == {"free": 0, "used": 9}
    summary.details = {"x": 1}
    assert summary.extra_info == {"x": 1}
    with pytest.raises(TypeError, match="extra_info or details"):
        ThreadRunSummary(extra_info={}, details={})


def test_run_summary_keeps_the_dict_it_was_given_as_lmcache_s_dataclass() -> None:
    info: dict[str, Any] = {}
    summary = ThreadRunSummary(extra_info=info)
    info["filled"] = "later"
    assert summary.extra_info is info and summary.to_dict()["extra_info"] == {"filled": "later"}


def test_run_summary_with_a_bool_first_keeps_the_older_success_message_details_order() -> None:
    summary = ThreadRunSummary(False, "bad", {"why": "disk"})
    assert (summary.success, summary.message, summary.extra_info, summary.timestamp) == (
        False, "bad", {"why": "disk"}, 0.0)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((1.0, 2.0, True, "", {}, "extra"), {}, "at most 5 positional"),
    ((), {"succes": True}, "unexpected keyword argument 'succes'"),
    ((1.0,), {"timestamp": 2.0}, "multiple values for argument 'timestamp'"),
])
def test_run_summary_bad_arguments_are_type_errors(args: tuple[Any, ...], kwargs: dict[str, Any],
                                                   match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ThreadRunSummary(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "   "}, ValueError, "name"),
        ({"name": 7}, TypeError, "name"),
        ({"interval": 0}, ValueError, "interval"),
        ({"interval": -1.0}, ValueError, "interval"),
        ({"interval": math.inf}, ValueError, "interval"),
        ({"interval": math.nan}, ValueError, "interval"),
        ({"interval": "1"}, TypeError, "interval"),
        ({"interval": True}, TypeError, "interval"),
        ({"init_wait": -0.1}, ValueError, "init_wait"),
        ({"init_wait": math.inf}, ValueError, "init_wait"),
        ({"execute_fn": "noop"}, TypeError, "execute_fn"),
        ({"level": "urgent"}, ValueError, "level"),
        ({"level": 3}, TypeError, "level"),
    ],
)
def test_invalid_arguments_rejected(
    kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    args: dict[str, Any] = {"name": "x", "interval": 1.0, "execute_fn": noop, **kwargs}
    with pytest.raises(error, match=names):
        PeriodicThread(**args)


def test_level_accepts_string_value_and_numbers_become_floats() -> None:
    thread = PeriodicThread("x", 2, noop, level="HIGH", init_wait=1)
    assert thread.level is ThreadLevel.HIGH
    assert isinstance(thread.interval, float) and thread.interval == 2.0
    assert isinstance(thread.init_wait, float) and thread.init_wait == 1.0


def test_function_form_takes_execute_fn_positionally_or_by_keyword() -> None:
    positional = PeriodicThread("x", 1.0, noop, ThreadLevel.HIGH, 0.5)
    keyword = PeriodicThread(name="x", interval=1.0, execute_fn=noop, level="high", init_wait=0.5)
    for thread in (positional, keyword):
        assert (thread.level, thread.init_wait) == (ThreadLevel.HIGH, 0.5)


def test_plain_periodic_thread_without_work_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="needs an execute_fn, or a subclass"):
        PeriodicThread("x", 1.0)
    with pytest.raises(TypeError, match="needs an execute_fn"):
        PeriodicThread("x", 1.0, ThreadLevel.HIGH)  # LMCache's positional level, no work


def test_subclass_form_takes_level_third_and_refuses_an_execute_fn_too() -> None:
    class Beat(PeriodicThread):
        def _execute(self) -> ThreadRunSummary:
            return ThreadRunSummary()

    beat = Beat("beat", 1.0, ThreadLevel.CRITICAL, 2.0)
    assert (beat.level, beat.init_wait) == (ThreadLevel.CRITICAL, 2.0)
    with pytest.raises(TypeError, match="overrides _execute"):
        Beat("beat", 1.0, noop)
    with pytest.raises(TypeError, match="multiple values for argument 'level'"):
        Beat("beat", 1.0, ThreadLevel.LOW, level=ThreadLevel.HIGH)
    with pytest.raises(TypeError, match="unexpected keyword argument 'levle'"):
        Beat("beat", 1.0, levle=ThreadLevel.HIGH)


def test_subclass_may_hold_its_lock_while_reading_its_own_status(make_thread: MakeThread) -> None:
    """LMCache's base lock is reentrant; a subclass that reads its status under it must not
    deadlock here either."""
    seen: list[int] = []

    class Reader(PeriodicThread):
        def _execute(self) -> ThreadRunSummary:
            with self._lock:
                seen.append(self.get_status()["total_runs"] + self.total_runs)
            return ThreadRunSummary()

    reader = Reader(f"reader-{uuid.uuid4().hex[:6]}", INTERVAL)
    reader.start()
    try:
        assert wait_until(lambda: len(seen) >= 2)
    finally:
        assert reader.stop(timeout=2.0)


def test_stop_event_and_stop_requested_tell_a_long_run_to_return(make_thread: MakeThread) -> None:
    seen: list[bool] = []

    class Waiter(PeriodicThread):
        def _execute(self) -> ThreadRunSummary:
            seen.append(self.stop_requested)
            interrupted = self._stop_event.wait(30.0)  # as LMCache subclasses wait
            seen.append(interrupted and self.stop_requested)
            return ThreadRunSummary()

    waiter = Waiter(f"waiter-{uuid.uuid4().hex[:6]}", 60.0)
    waiter.start()
    assert wait_until(lambda: len(seen) == 1)
    began = time.monotonic()
    assert waiter.stop(timeout=5.0)
    assert time.monotonic() - began < 3.0
    assert seen == [False, True] and not waiter.stop_requested


# --- the loop ---------------------------------------------------------------------------------


def test_create_does_not_start(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec)
    assert not thread.is_running
    assert not rec.ran.wait(3 * INTERVAL)


def test_runs_repeatedly(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec)
    assert isinstance(thread.start(), threading.Thread)
    assert rec.wait_runs(3)
    assert wait_until(lambda: thread.total_runs >= 3)
    assert thread.failed_runs == 0


def test_start_returns_the_thread_and_twice_is_a_noop_returning_none(
        make_thread: MakeThread) -> None:
    thread = make_thread()
    started = thread.start()
    assert isinstance(started, threading.Thread) and started.is_alive()
    assert started.name == thread.name
    assert thread.start() is None
    assert [t.name for t in threading.enumerate()].count(thread.name) == 1


def test_os_thread_is_daemon_named_after_periodic_thread(make_thread: MakeThread) -> None:
    thread = make_thread()
    thread.start()
    (os_thread,) = [t for t in threading.enumerate() if t.name == thread.name]
    assert os_thread.daemon


def test_init_wait_delays_first_run(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec, init_wait=0.3)
    started = time.monotonic()
    thread.start()
    assert rec.ran.wait(3.0)
    assert rec.starts[0] - started >= 0.29


def test_stop_returns_promptly_during_long_interval(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec, interval=60.0)
    thread.start()
    assert rec.ran.wait(3.0)
    began = time.monotonic()
    assert thread.stop(timeout=5.0) is True
    assert time.monotonic() - began < 1.0
    assert not thread.is_running


def test_stop_returns_promptly_during_long_init_wait(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec, init_wait=60.0)
    thread.start()
    began = time.monotonic()
    assert thread.stop(timeout=5.0) is True
    assert time.monotonic() - began < 1.0
    assert rec.starts == []


def test_stop_reports_timeout_while_run_in_progress(make_thread: MakeThread) -> None:
    gate = threading.Event()
    rec = Recorder(block=gate)
    thread = make_thread(rec)
    thread.start()
    assert rec.ran.wait(3.0)
    assert thread.stop(timeout=0.05) is False
    gate.set()
    assert wait_until(lambda: not thread.is_running)
    assert len(rec.starts) == 1


def test_start_while_stop_pending_resumes_without_overlap(make_thread: MakeThread) -> None:
    gate = threading.Event()
    active: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        active.append(1)
        overlaps.append(len(active))
        gate.wait(5.0)
        active.pop()

    thread = make_thread(work)
    thread.start()
    assert wait_until(lambda: len(overlaps) == 1)
    assert thread.stop(timeout=0.05) is False  # the run is still in progress
    resumed = thread.start()
    assert resumed is not None and resumed.is_alive()  # the same loop carries on
    gate.set()
    assert wait_until(lambda: thread.total_runs >= 3)
    assert thread.is_running
    assert max(overlaps) == 1


def test_stop_from_inside_execute_fn_does_not_deadlock(make_thread: MakeThread) -> None:
    results: list[bool] = []
    thread: PeriodicThread

    def stop_self() -> None:
        results.append(thread.stop(timeout=1.0))

    thread = make_thread(stop_self)
    thread.start()
    assert wait_until(lambda: thread.total_runs == 1 and not thread.is_running)
    assert results == [False]
    assert thread.total_runs == 1


def test_wake_runs_now(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec, interval=60.0)
    thread.start()
    assert rec.wait_runs(1)
    thread.wake()
    assert rec.wait_runs(2, timeout=1.0)


def test_wake_during_init_wait_runs_now(make_thread: MakeThread) -> None:
    rec = Recorder()
    thread = make_thread(rec, init_wait=60.0)
    thread.start()
    thread.wake()
    assert rec.ran.wait(1.0)


def test_schedule_does_not_drift_with_run_duration(make_thread: MakeThread) -> None:
    def slow() -> None:
        rec()
        threading.Event().wait(0.15)

    rec = Recorder()
    thread = make_thread(slow, interval=0.2)
    thread.start()
    assert rec.wait_runs(4)
    gaps = [b - a for a, b in itertools.pairwise(rec.starts)]
    assert statistics.median(gaps) < 0.3, gaps  # drifting would give interval + run = 0.35


def test_overrunning_run_starts_next_immediately(make_thread: MakeThread) -> None:
    def slow() -> None:
        rec()
        threading.Event().wait(0.2)

    rec = Recorder()
    thread = make_thread(slow, interval=0.1)
    thread.start()
    assert rec.wait_runs(3)
    gaps = [b - a for a, b in itertools.pairwise(rec.starts)]
    assert statistics.median(gaps) < 0.27, gaps  # a full interval after the run would give 0.3


# --- results and failures ---------------------------------------------------------------------


def test_return_values_become_summaries(make_thread: MakeThread) -> None:
    seen: list[ThreadRunSummary | None] = []
    results: list[object] = [None, True, "3 items", ThreadRunSummary(message="ok"), False]
    thread: PeriodicThread

    def work() -> object:
        seen.append(thread.last_summary)  # the summary of the previous run
        return results[len(seen) - 1] if len(seen) <= len(results) else None

    thread = make_thread(work)
    thread.start()
    assert wait_until(lambda: len(seen) > len(results))
    assert [outcome(s) for s in seen[1:6]] == [
        (True, ""),
        (True, ""),
        (True, "3 items"),  # str(), not repr()
        (True, "ok"),
        (False, "execute_fn returned False"),
    ]


def test_false_and_failed_summary_count_as_failures(
    make_thread: MakeThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rec = Recorder(False, ThreadRunSummary(success=False, message="bad"), True, None)
    thread = make_thread(rec)
    thread.start()
    assert wait_until(lambda: thread.total_runs >= 4)
    assert thread.failed_runs == 2
    assert thread.is_running
    warnings_ = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings_) == 2
    assert thread.name in warnings_[1].getMessage() and "bad" in warnings_[1].getMessage()


def test_exception_counts_as_failure_and_thread_continues(
    make_thread: MakeThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    seen: list[ThreadRunSummary | None] = []
    thread: PeriodicThread

    def work() -> None:
        seen.append(thread.last_summary)
        if len(seen) == 1:
            raise ValueError("boom")

    thread = make_thread(work)
    thread.start()
    assert wait_until(lambda: thread.total_runs >= 2)
    assert outcome(seen[1]) == (False, "ValueError: boom")
    assert thread.failed_runs == 1
    assert thread.is_running
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_irrecoverable_ends_thread_and_it_can_restart(
    make_thread: MakeThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    rec = Recorder(IrrecoverableException("lost the device"))
    thread = make_thread(rec)
    thread.start()
    assert wait_until(lambda: not thread.is_running)
    assert (thread.total_runs, thread.failed_runs) == (1, 1)
    assert outcome(thread.last_summary) == (False, "IrrecoverableException: lost the device")
    assert any(r.levelno == logging.ERROR and r.name == LOGGER for r in caplog.records)
    assert not rec.wait_runs(2, timeout=3 * INTERVAL)
    assert thread.start() is not None
    assert rec.wait_runs(2)
    assert wait_until(lambda: thread.total_runs >= 2)
    assert thread.failed_runs == 1


def test_last_run_time_is_when_run_began(make_thread: MakeThread) -> None:
    began: list[float] = []

    def work() -> None:
        began.append(time.time())
        threading.Event().wait(0.1)

    thread = make_thread(work, interval=60.0)
    assert thread.last_run_time == 0.0  # LMCache's "never ran"
    before = time.time()
    thread.start()
    assert wait_until(lambda: thread.total_runs == 1)
    last = thread.last_run_time
    assert before <= last <= began[0]


def test_framework_fills_summary_timestamp_and_duration(make_thread: MakeThread) -> None:
    shared = ThreadRunSummary(message="same object every run", extra_info={"k": "v"})

    def work() -> ThreadRunSummary:
        threading.Event().wait(0.05)
        return shared

    thread = make_thread(work, interval=60.0)
    before = time.time()
    thread.start()
    assert wait_until(lambda: thread.total_runs == 1)
    summary = thread.last_summary
    assert summary is not None and summary.message == "same object every run"
    assert summary.timestamp == thread.last_run_time and before <= summary.timestamp
    assert 45.0 <= summary.duration_ms < 5000.0
    assert summary.extra_info == {"k": "v"}
    assert (shared.timestamp, shared.duration_ms) == (0.0, 0.0)  # what the work returned is kept
    shared.extra_info["k"] = "changed after the run"
    assert summary.extra_info == {"k": "v"}  # the record is a copy


def test_failed_runs_get_timing_too(make_thread: MakeThread) -> None:
    def work() -> None:
        raise RuntimeError("down")

    thread = make_thread(work, interval=60.0)
    thread.start()
    assert wait_until(lambda: thread.total_runs == 1)
    summary = thread.last_summary
    assert summary is not None and outcome(summary) == (False, "RuntimeError: down")
    assert summary.timestamp == thread.last_run_time > 0 and summary.duration_ms >= 0.0


# --- activity ---------------------------------------------------------------------------------


def test_is_active_goes_false_when_run_stalls(make_thread: MakeThread) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if len(calls) == 2:
            gate.wait(5.0)

    thread = make_thread(work)
    thread.start()
    assert wait_until(lambda: thread.total_runs >= 1)
    assert thread.is_active
    assert wait_until(lambda: not thread.is_active, timeout=2.0)
    assert thread.is_running
    gate.set()
    assert wait_until(lambda: thread.is_active)


def test_is_active_before_first_run_allows_init_wait(make_thread: MakeThread) -> None:
    waiting = make_thread(init_wait=60.0)
    waiting.start()
    assert not wait_until(lambda: not waiting.is_active, timeout=6 * INTERVAL)


def test_is_active_before_first_run_expires_after_init_wait_plus_three_intervals(
    make_thread: MakeThread,
) -> None:
    thread = make_thread(init_wait=1.0)
    thread.start()
    assert thread.is_active
    # White-box: pretend start() happened init_wait + 3 x interval ago without any run since.
    with thread._lock:
        thread._started_mono = time.monotonic() - (1.0 + 3 * INTERVAL) - 0.01
    assert not thread.is_active


def test_first_run_that_never_ends_makes_thread_inactive(make_thread: MakeThread) -> None:
    gate = threading.Event()
    thread = make_thread(Recorder(block=gate))
    thread.start()
    assert thread.is_active
    assert wait_until(lambda: not thread.is_active, timeout=2.0)
    gate.set()


def test_stopped_thread_is_not_active(make_thread: MakeThread) -> None:
    thread = make_thread()
    assert not thread.is_active
    thread.start()
    assert thread.is_active
    thread.stop()
    assert not thread.is_active


# --- status -----------------------------------------------------------------------------------


def test_get_status_before_first_run(make_thread: MakeThread) -> None:
    thread = make_thread(level="critical", interval=10, init_wait=60.0)
    status = thread.get_status()
    assert set(status) == STATUS_KEYS
    assert status == {
        "name": thread.name,
        "level": "critical",
        "interval": 10.0,
        "init_wait": 60.0,
        "is_running": False,
        "is_active": False,
        "last_run_time": 0.0,
        "last_run_ago": None,
        "total_runs": 0,
        "failed_runs": 0,
        "success_rate": None,
        "last_summary": None,
    }


def test_get_status_after_runs_is_lmcache_s_shape(make_thread: MakeThread) -> None:
    summary = ThreadRunSummary(success=False, message="late", extra_info={"lag": 2})
    thread = make_thread(Recorder(True, True, summary), interval=60.0, level=ThreadLevel.HIGH)
    thread.start()
    assert wait_until(lambda: thread.total_runs >= 1)
    thread.wake()  # the interval is long: wake() drives runs 2 and 3
    assert wait_until(lambda: thread.total_runs >= 2)
    thread.wake()
    assert wait_until(lambda: thread.total_runs >= 3)
    status = json.loads(json.dumps(thread.get_status()))
    assert set(status) == STATUS_KEYS
    assert status["level"] == "high" and status["is_running"] and status["is_active"]
    assert isinstance(status["last_run_time"], float)
    assert abs(status["last_run_time"] - time.time()) < 5
    assert isinstance(status["last_run_ago"], float) and 0 <= status["last_run_ago"] < 5
    assert (status["total_runs"], status["failed_runs"]) == (3, 1)
    assert status["success_rate"] == pytest.approx(200 / 3)  # a percentage, as LMCache's
    assert set(status["last_summary"]) == SUMMARY_KEYS
    assert status["last_summary"]["timestamp"] == status["last_run_time"]
    assert (status["last_summary"]["success"], status["last_summary"]["message"],
            status["last_summary"]["extra_info"]) == (False, "late", {"lag": 2})


# --- registry ---------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_registry() -> Iterator[PeriodicThreadRegistry]:
    """A fresh process-wide registry for the block; the previous one comes back after it."""
    saved = PeriodicThreadRegistry._instance
    PeriodicThreadRegistry._instance = None
    try:
        yield PeriodicThreadRegistry.get_instance()
    finally:
        PeriodicThreadRegistry._instance = saved


def test_registry_is_a_singleton(registry: PeriodicThreadRegistry) -> None:
    assert PeriodicThreadRegistry.get_instance() is registry


def test_create_registers_only_when_asked(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    registered = make_thread(register=True)
    unregistered = make_thread()
    assert registry.get(registered.name) is registered and registered.name in registry
    assert registered in registry
    assert unregistered.name not in registry and registry.get(unregistered.name) is None


def test_registry_lists_sorted_and_unregisters(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    size = len(registry)
    prefix = f"test-sorted-{uuid.uuid4().hex[:6]}"
    for suffix in ("c", "a", "b"):
        make_thread(name=f"{prefix}-{suffix}", register=True)
    assert len(registry) == size + 3
    names = [t.name for t in registry.threads()]
    assert names == sorted(names)
    assert [n for n in names if n.startswith(prefix)] == [f"{prefix}-{s}" for s in "abc"]
    removed = registry.unregister(f"{prefix}-b")
    assert removed is not None and removed.name == f"{prefix}-b"
    assert f"{prefix}-b" not in registry and len(registry) == size + 2
    assert registry.unregister(f"{prefix}-b") is None


def test_get_all_keeps_registration_order_and_unregister_all_empties(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    prefix = f"test-order-{uuid.uuid4().hex[:6]}"
    made = [make_thread(name=f"{prefix}-{suffix}", register=True) for suffix in "cab"]
    mine = [t for t in registry.get_all() if t.name.startswith(prefix)]
    assert mine == made
    others = [t for t in registry.get_all() if not t.name.startswith(prefix)]
    registry.unregister_all()
    try:
        assert registry.get_all() == [] and len(registry) == 0
        assert all(not t.is_running for t in made)  # unregistering stops nothing
    finally:
        for thread in others:
            registry.register(thread)


def test_level_queries_and_counts(make_thread: MakeThread,
                                  registry: PeriodicThreadRegistry) -> None:
    with isolated_registry() as reg:
        high_running = make_thread(level="high", register=True)
        high_idle = make_thread(level=ThreadLevel.HIGH, register=True)
        low = make_thread(level="low", register=True)
        high_running.start()
        low.start()
        assert reg.get_by_level(ThreadLevel.HIGH) == [high_running, high_idle]
        assert reg.get_by_level("LOW") == [low] and reg.get_by_level("critical") == []
        assert (reg.get_running_count(), reg.get_active_count()) == (2, 2)
        assert reg.get_count_by_level(ThreadLevel.HIGH) == {"total": 2, "running": 1, "active": 1}
        assert reg.get_count_by_level(ThreadLevel.MEDIUM) == {"total": 0, "running": 0,
                                                              "active": 0}
        with pytest.raises(ValueError, match="Invalid level: urgent"):
            reg.get_by_level("urgent")
        summary = reg.get_summary()
        assert set(summary) == {"total_count", "running_count", "active_count", "by_level",
                                "threads"}
        assert (summary["total_count"], summary["running_count"], summary["active_count"]) == (
            3, 2, 2)
        assert list(summary["by_level"]) == ["critical", "high", "medium", "low"]
        assert summary["by_level"]["critical"] == {"total": 0, "running": 0, "active": 0}
        assert summary["by_level"]["high"] == {"total": 2, "running": 1, "active": 1}
        assert [s["name"] for s in summary["threads"]] == [high_running.name, high_idle.name,
                                                           low.name]
        assert all(set(s) == STATUS_KEYS for s in summary["threads"])


def test_reset_gives_a_fresh_registry_and_leaves_threads_running(
        make_thread: MakeThread) -> None:
    with isolated_registry() as old:
        thread = make_thread(register=True)
        thread.start()
        PeriodicThreadRegistry.reset()
        new = PeriodicThreadRegistry.get_instance()
        assert new is not old and new.get_all() == [] and old.get_all() == []
        assert thread.is_running
        new.register(thread)  # the new registry has no running thread of that name
        assert new.get(thread.name) is thread


def test_registering_running_name_is_an_error(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    first = make_thread(register=True)
    first.start()
    with pytest.raises(ValueError) as excinfo:
        make_thread(name=first.name, register=True)
    assert str(excinfo.value) == (
        f"Periodic thread name already in use by a running thread: {first.name}"
    )
    assert registry.get(first.name) is first


def test_stopped_thread_name_can_be_reused(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    first = make_thread(register=True)
    first.start()
    assert first.stop()
    second = make_thread(name=first.name, register=True)
    assert registry.get(first.name) is second


def test_registering_same_object_twice_is_a_noop(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    thread = make_thread(register=True)
    thread.start()
    size = len(registry)
    registry.register(thread)
    assert len(registry) == size and registry.get(thread.name) is thread


# --- fork -------------------------------------------------------------------------------------


def _report_from_child(thread: PeriodicThread, parent_pid: int, runs: list[int], fd: int) -> None:
    """Runs in the forked child: wait for a run there, write what was seen, never return."""
    code = 1
    try:
        me = os.getpid()
        ran = wait_until(lambda: me in runs and thread.total_runs >= 1, timeout=5.0)
        report = {
            "ran_in_child": ran and me != parent_pid,
            "is_running": thread.is_running,
            "failed_runs": thread.failed_runs,
            "registered": PeriodicThreadRegistry.get_instance().get(thread.name) is thread,
            "os_threads": [t.name for t in threading.enumerate()],
        }
        os.write(fd, json.dumps(report).encode())
        code = 0
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_restarts_threads_in_child(
    make_thread: MakeThread, registry: PeriodicThreadRegistry
) -> None:
    parent_pid = os.getpid()
    runs: list[int] = []

    def work() -> bool:
        runs.append(os.getpid())
        return os.getpid() != parent_pid  # every run in the parent fails

    thread = make_thread(work, register=True)
    thread.start()
    assert wait_until(lambda: thread.failed_runs >= 2)
    read_fd, write_fd = os.pipe()
    # Hold both internal locks across the fork: a child that kept them would hang.
    with warnings.catch_warnings(), registry._lock, thread._lock:
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork" on 3.12+
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _report_from_child(thread, parent_pid, runs, write_fd)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 10.0)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        data = b""
        while ready and (chunk := os.read(read_fd, 65536)):
            data += chunk
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    assert ready, "child did not report in time (deadlocked after fork?)"
    assert os.waitstatus_to_exitcode(status) == 0
    report = json.loads(data)
    assert report["ran_in_child"] and report["is_running"] and report["registered"]
    assert report["failed_runs"] == 0  # counters were reset: the parent's failures are gone
    assert thread.name in report["os_threads"]
    assert thread.is_running and thread.failed_runs >= 2  # the parent is unaffected
