# ruff: noqa: UP045, UP037 -- spelled as LMCache spells it (Optional, quoted names)
"""LMCache-style periodic-thread code, run on common_api.periodic.

Everything below the harness fixture is written the way an LMCache component or test uses
``lmcache.v1.periodic_thread``; only the import differs (LMCache has
``from lmcache.v1.periodic_thread import ...`` and takes ``IrrecoverableException`` from
``lmcache.v1.exceptions``). If one of these fails, a port would break.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import pytest

from common_api.periodic import (
    IrrecoverableException,
    PeriodicThread,
    PeriodicThreadRegistry,
    ThreadLevel,
    ThreadRunSummary,
    create_periodic_thread,
)


@pytest.fixture(autouse=True)
def _keep_the_suite_s_registry() -> Iterator[None]:
    """Harness, not LMCache code: these tests reset the process-wide registry as LMCache's
    do; the registry of the rest of the suite comes back afterwards."""
    saved = PeriodicThreadRegistry._instance
    PeriodicThreadRegistry._instance = None
    try:
        yield
    finally:
        PeriodicThreadRegistry._instance = saved


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


class EvictionThread(PeriodicThread):
    """A subclass the way LMCache components write them (PinMonitor, heartbeats)."""

    def __init__(self, interval: float, gate: Optional[threading.Event] = None,
                 fail_every: int = 0) -> None:
        super().__init__(
            name="eviction-thread",
            interval=interval,
            level=ThreadLevel.HIGH,
            init_wait=0.0,
        )
        self._gate = gate
        self._fail_every = fail_every
        self._cycles = 0
        self._interval = interval  # LMCache subclasses set base attributes again, harmlessly

    def _execute(self) -> ThreadRunSummary:
        if self._gate is not None:
            self._gate.wait(timeout=5.0)
        self._cycles += 1
        if self._fail_every and self._cycles % self._fail_every == 0:
            return ThreadRunSummary(success=False, message=f"cycle {self._cycles} failed")
        return ThreadRunSummary(
            timestamp=time.time(),
            success=True,
            message=f"cycle {self._cycles}",
            extra_info={"evicted": str(self._cycles)},
        )

    @property
    def cycles(self) -> int:
        return self._cycles


def test_subclass_runs_and_reports() -> None:
    PeriodicThreadRegistry.reset()
    thread = EvictionThread(interval=0.05)
    assert thread.name == "eviction-thread"
    assert thread.level == ThreadLevel.HIGH
    assert (thread.interval, thread.init_wait) == (0.05, 0.0)
    assert thread.last_run_time == 0.0 and thread.last_summary is None
    assert not thread.is_running and not thread.is_active

    worker = thread.start()
    try:
        assert isinstance(worker, threading.Thread) and worker.is_alive()
        assert worker.name == "eviction-thread"
        assert thread.start() is None  # already running
        assert poll(lambda: thread.total_runs >= 2)
        assert thread.is_running and thread.is_active
        summary = thread.last_summary
        assert summary is not None and summary.success
        assert summary.message.startswith("cycle ")
        assert summary.extra_info["evicted"].isdigit()
        assert summary.timestamp > 0 and summary.duration_ms >= 0
        assert thread.last_run_time == summary.timestamp
        assert thread.failed_runs == 0
    finally:
        thread.stop()
    assert not thread.is_running
    assert not worker.is_alive()


def test_get_status_reports_percentages() -> None:
    PeriodicThreadRegistry.reset()
    thread = EvictionThread(interval=0.02, fail_every=2)
    status = thread.get_status()
    assert status["success_rate"] is None
    assert status["last_run_ago"] is None
    assert status["last_run_time"] == 0
    thread.start()
    try:
        assert poll(lambda: thread.total_runs >= 4)
    finally:
        thread.stop(timeout=5.0)
    status = thread.get_status()
    assert status["name"] == "eviction-thread"
    assert status["level"] == "high"
    assert status["interval"] == 0.02 and status["init_wait"] == 0.0
    assert status["is_running"] is False and status["is_active"] is False
    total, failed = status["total_runs"], status["failed_runs"]
    assert failed == total // 2
    assert status["success_rate"] == (total - failed) / total * 100
    assert 0 <= status["success_rate"] <= 100
    assert status["last_run_ago"] >= 0
    assert isinstance(status["last_run_time"], float) and status["last_run_time"] > 0
    last = status["last_summary"]
    assert set(last) == {"timestamp", "duration_ms", "success", "message", "extra_info"}
    assert last["timestamp"] == status["last_run_time"]


def test_create_periodic_thread_wraps_a_function() -> None:
    PeriodicThreadRegistry.reset()
    calls = []

    def flush() -> ThreadRunSummary:
        calls.append(time.time())
        return ThreadRunSummary(message="flushed", extra_info={"batch": str(len(calls))})

    thread = create_periodic_thread(
        name="stats-logger-thread",
        interval=0.05,
        execute_fn=flush,
        level=ThreadLevel.MEDIUM,
        init_wait=0.01,
    )
    registry = PeriodicThreadRegistry.get_instance()
    assert registry.get("stats-logger-thread") is thread
    assert isinstance(thread, PeriodicThread)
    thread.start()
    try:
        assert poll(lambda: len(calls) >= 2)
        assert thread.last_summary is not None
        assert thread.last_summary.message == "flushed"
    finally:
        thread.stop()
    assert registry.unregister("stats-logger-thread") is thread
    assert registry.unregister("stats-logger-thread") is None


def test_irrecoverable_exception_ends_the_worker_and_start_makes_a_new_one() -> None:
    attempts = []
    again = threading.Event()

    def execute() -> ThreadRunSummary:
        attempts.append(1)
        if len(attempts) == 1:
            raise IrrecoverableException("device lost")
        again.set()
        return ThreadRunSummary()

    thread = create_periodic_thread(name="restartable", interval=10.0, execute_fn=execute,
                                    auto_register=False)
    first = thread.start()
    assert first is not None
    first.join(timeout=5.0)
    assert not first.is_alive() and not thread.is_running
    assert thread.failed_runs == 1 and thread.total_runs == 1
    assert thread.last_summary is not None and not thread.last_summary.success
    assert "device lost" in thread.last_summary.message
    second = thread.start()
    try:
        assert second is not None and second is not first
        assert again.wait(timeout=5.0)
    finally:
        thread.stop()


def test_exception_is_a_failed_run_and_the_thread_goes_on() -> None:
    runs = []

    def flaky() -> ThreadRunSummary:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("backend timeout")
        return ThreadRunSummary()

    thread = create_periodic_thread("flaky", 0.02, flaky, auto_register=False)
    thread.start()
    try:
        assert poll(lambda: thread.total_runs >= 3)
        assert thread.failed_runs == 1 and thread.is_running
    finally:
        thread.stop()


def test_wake_runs_a_cycle_now_and_carries_over_from_a_running_cycle() -> None:
    PeriodicThreadRegistry.reset()
    idle = EvictionThread(interval=60.0)
    idle.wake()  # before start: nothing happens
    assert idle.cycles == 0 and not idle.is_running

    gate = threading.Event()
    thread = EvictionThread(interval=60.0, gate=gate)
    thread.start()
    try:
        thread.wake()  # while the first cycle waits on the gate (or is about to)
        gate.set()
        assert poll(lambda: thread.cycles >= 2), "the wake was lost"
        thread.wake()
        assert poll(lambda: thread.cycles >= 3)
    finally:
        gate.set()
        began = time.time()
        thread.stop(timeout=2.0)
        assert time.time() - began < 2.0  # stop cuts the 60 s interval short
    assert not thread.is_running


def test_registry_queries_and_reset() -> None:
    PeriodicThreadRegistry.reset()
    registry = PeriodicThreadRegistry.get_instance()
    assert registry is PeriodicThreadRegistry.get_instance()
    assert registry.get_all() == []

    critical = create_periodic_thread("health-monitor-thread", 0.05, lambda: ThreadRunSummary(),
                                      level=ThreadLevel.CRITICAL)
    eviction = EvictionThread(interval=0.05)
    registry.register(eviction)
    lazy = create_periodic_thread("lazy-memory-expand-thread", 60.0,
                                  lambda: ThreadRunSummary(), level=ThreadLevel.LOW,
                                  init_wait=60.0)
    critical.start()
    eviction.start()
    try:
        assert poll(lambda: critical.total_runs >= 1 and eviction.total_runs >= 1)
        assert registry.get_all() == [critical, eviction, lazy]
        assert registry.get("eviction-thread") is eviction
        assert registry.get("missing") is None
        assert registry.get_by_level(ThreadLevel.CRITICAL) == [critical]
        assert registry.get_by_level(ThreadLevel.MEDIUM) == []
        assert registry.get_running_count() == 2
        assert registry.get_active_count() == 2
        assert registry.get_count_by_level(ThreadLevel.LOW) == {
            "total": 1, "running": 0, "active": 0}
        assert registry.get_count_by_level(ThreadLevel.HIGH) == {
            "total": 1, "running": 1, "active": 1}

        summary = registry.get_summary()
        assert summary["total_count"] == 3
        assert summary["running_count"] == 2
        assert summary["active_count"] == 2
        assert set(summary["by_level"]) == {"critical", "high", "medium", "low"}
        assert summary["by_level"]["medium"] == {"total": 0, "running": 0, "active": 0}
        assert [s["name"] for s in summary["threads"]] == [
            "health-monitor-thread", "eviction-thread", "lazy-memory-expand-thread"]
        assert summary["threads"][1]["success_rate"] == 100.0

        registry.unregister_all()
        assert registry.get_all() == []
        registry.register(lazy)
        PeriodicThreadRegistry.reset()
        assert PeriodicThreadRegistry.get_instance().get_all() == []
        assert PeriodicThreadRegistry.get_instance() is not registry
    finally:
        critical.stop()
        eviction.stop()


class PinMonitorLike(PeriodicThread):
    """A process-wide singleton that registers and starts itself, as LMCache's PinMonitor."""

    _instance: Optional["PinMonitorLike"] = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(name="PinMonitor-thread", interval=0.05, level=ThreadLevel.CRITICAL,
                         init_wait=0.0)
        self._pinned: dict[int, float] = {}
        PeriodicThreadRegistry.get_instance().register(self)
        self.start_monitoring()

    @staticmethod
    def GetOrCreate() -> "PinMonitorLike":
        if PinMonitorLike._instance is None:
            with PinMonitorLike._instance_lock:
                if PinMonitorLike._instance is None:
                    PinMonitorLike._instance = PinMonitorLike()
        return PinMonitorLike._instance

    def start_monitoring(self) -> None:
        if self.is_running:
            return
        self.start()

    def stop_monitoring(self) -> None:
        if not self.is_running:
            return
        PeriodicThreadRegistry.get_instance().unregister(self.name)
        self.stop()

    def _execute(self) -> ThreadRunSummary:
        return ThreadRunSummary(
            success=True,
            message=f"Checked {len(self._pinned)} objects",
            extra_info={"pinned_count": str(len(self._pinned))},
        )

    @staticmethod
    def DestroyInstance() -> None:
        with PinMonitorLike._instance_lock:
            if PinMonitorLike._instance is not None:
                PinMonitorLike._instance.stop_monitoring()
                PinMonitorLike._instance = None


def test_self_registering_singleton_monitor() -> None:
    PeriodicThreadRegistry.reset()
    monitor = PinMonitorLike.GetOrCreate()
    try:
        assert PinMonitorLike.GetOrCreate() is monitor
        registry = PeriodicThreadRegistry.get_instance()
        assert registry.get("PinMonitor-thread") is monitor
        assert poll(lambda: monitor.total_runs >= 1)
        status = registry.get_summary()["threads"][0]
        assert status["last_summary"]["extra_info"] == {"pinned_count": "0"}
        assert registry.get_count_by_level(ThreadLevel.CRITICAL)["active"] == 1
    finally:
        PinMonitorLike.DestroyInstance()
    assert PeriodicThreadRegistry.get_instance().get_all() == []
    assert not monitor.is_running


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_periodic_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Periodic threads\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_s_periodic_thread_examples_run() -> None:
    """Harness: the README's examples, run in order in one namespace, say what is true."""
    examples = readme_periodic_examples()
    assert len(examples) == 3
    namespace: dict[str, object] = {"__name__": "readme_example"}
    try:
        for code in examples:
            exec(compile(code, str(README), "exec"), namespace)
        stats, eviction = namespace["stats"], namespace["eviction"]
        assert isinstance(stats, PeriodicThread) and isinstance(eviction, PeriodicThread)
        assert isinstance(namespace["worker"], threading.Thread)
        assert not stats.is_running and not eviction.is_running
        assert set(namespace["status"]) == {  # type: ignore[arg-type]
            "name", "level", "interval", "init_wait", "is_running", "is_active",
            "last_run_time", "last_run_ago", "total_runs", "failed_runs", "success_rate",
            "last_summary"}
        assert PeriodicThreadRegistry.get_instance().get_all() == []
    finally:
        for name in ("stats", "eviction"):
            thread = namespace.get(name)
            if isinstance(thread, PeriodicThread):
                thread.stop()
