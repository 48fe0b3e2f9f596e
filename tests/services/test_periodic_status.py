from __future__ import annotations

import json
import math
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from support import wait_until

from common_api.errors import InvalidInput, NotFound
from common_api.periodic import PeriodicThread, ThreadLevel, ThreadRunSummary
from common_api.services.periodic_status import PeriodicStatusService, thread_status


def status(name: str, level: str, running: bool = True, active: bool = True,
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "level": level, "is_running": running, "is_active": active,
            "last_run_time": None, "interval": 1.0, "last_run_ago": 4.0, **extra}


SAMPLE = [
    status("heartbeat", "critical"),
    status("sync", "high", running=False, active=False),
    status("stats", "high"),
    status("sweeper", "medium", active=False),
    status("report", "low", running=False, active=False),
]


@pytest.fixture
def service() -> PeriodicStatusService:
    return PeriodicStatusService(lambda: SAMPLE)


def test_listing_has_seed_summary_shape(service: PeriodicStatusService) -> None:
    listing = service.listing()
    assert listing["summary"] == {
        "total_count": 5, "running_count": 3, "active_count": 2,
        "by_level": {
            "critical": {"total": 1, "running": 1, "active": 1},
            "high": {"total": 2, "running": 1, "active": 1},
            "medium": {"total": 1, "running": 1, "active": 0},
            "low": {"total": 1, "running": 0, "active": 0},
        },
    }
    assert [t["name"] for t in listing["threads"]] == sorted(s["name"] for s in SAMPLE)


def test_filters_combine(service: PeriodicStatusService) -> None:
    assert [t["name"] for t in service.listing(level="HIGH")["threads"]] == ["stats", "sync"]
    assert [t["name"] for t in service.listing(running_only=True)["threads"]] == [
        "heartbeat", "stats", "sweeper"]
    assert [t["name"] for t in service.listing(level="high", active_only=True)["threads"]] == [
        "stats"]


def test_invalid_level_message_matches_seed(service: PeriodicStatusService) -> None:
    with pytest.raises(InvalidInput) as info:
        service.listing(level="unknown")
    assert str(info.value) == "Invalid level: unknown. Valid values: critical, high, medium, low"


def test_lookup_and_not_found(service: PeriodicStatusService) -> None:
    assert service.lookup("stats")[0]["level"] == "high"
    with pytest.raises(NotFound) as info:
        service.lookup("missing")
    assert str(info.value) == "Thread not found: missing"


def test_health_counts_only_critical_and_high(service: PeriodicStatusService) -> None:
    health = service.health()
    assert health["healthy"] is False
    assert health["unhealthy_count"] == 1
    entry = health["unhealthy_threads"][0]
    assert (entry["name"], entry["level"], entry["last_run_ago"], entry["interval"]) == (
        "sync", "high", 4.0, 1.0)


def test_health_is_healthy_when_low_levels_are_down() -> None:
    service = PeriodicStatusService(lambda: [status("a", "critical"),
                                             status("b", "medium", False, False)])
    assert service.health() == {"healthy": True, "unhealthy_count": 0, "unhealthy_threads": [],
                                "workers": 1}


# --------------------------------------------------------------- rendering a thread's status

HTTP_KEYS = {"name", "level", "is_running", "is_active", "last_run_time", "interval",
             "init_wait", "last_run_ago", "total_runs", "failed_runs", "success_rate",
             "last_summary"}


def run_until(thread: PeriodicThread, runs: int) -> None:
    thread.start()
    deadline = time.monotonic() + 10.0
    try:
        while thread.total_runs < runs:
            assert time.monotonic() < deadline, "the thread did not run in time"
            thread.wake()
            time.sleep(0.005)
    finally:
        assert thread.stop(timeout=5.0)


def test_status_before_the_first_run_has_nulls() -> None:
    thread = PeriodicThread("render-idle", 10, lambda: None, level="critical", init_wait=60)
    assert thread_status(thread) == {
        "name": "render-idle", "level": "critical", "is_running": False, "is_active": False,
        "last_run_time": None, "interval": 10.0, "init_wait": 60.0, "last_run_ago": None,
        "total_runs": 0, "failed_runs": 0, "success_rate": None, "last_summary": None}


def test_status_has_iso_time_percentage_and_lmcache_summary_keys() -> None:
    results = iter([True, False, True, ThreadRunSummary(success=True, message="fine",
                                                       extra_info={"evicted": 3})])
    thread = PeriodicThread("render-runs", 60.0, lambda: next(results), level=ThreadLevel.HIGH)
    run_until(thread, 4)
    status = json.loads(json.dumps(thread_status(thread)))
    assert set(status) == HTTP_KEYS
    ran_at = datetime.fromisoformat(status["last_run_time"])
    assert ran_at.timestamp() == pytest.approx(thread.last_run_time, abs=1e-3)
    assert status["last_run_ago"] == round(status["last_run_ago"], 3) >= 0
    assert (status["total_runs"], status["failed_runs"], status["success_rate"]) == (4, 1, 75.0)
    summary = status["last_summary"]
    assert set(summary) == {"timestamp", "duration_ms", "success", "message", "extra_info"}
    assert summary["timestamp"] == thread.last_run_time and summary["duration_ms"] >= 0
    assert (summary["success"], summary["message"], summary["extra_info"]) == (
        True, "fine", {"evicted": 3})


def test_status_of_a_summary_with_unserialisable_extra_info_is_still_json() -> None:
    deep: dict[str, object] = {"l1": {"l2": {"l3": {"l4": {"l5": 1}}}}}
    odd = ThreadRunSummary(extra_info={"obj": object(), "nan": math.nan, "tuple": (1, "a"),
                                       "set": {1}, 7: "int key", "deep": deep})
    thread = PeriodicThread("render-odd", 60.0, lambda: odd)
    run_until(thread, 1)
    extra = json.loads(json.dumps(thread_status(thread), allow_nan=False))["last_summary"][
        "extra_info"]
    assert extra["obj"].startswith("<object object")
    assert (extra["nan"], extra["tuple"], extra["set"], extra["7"]) == (
        "nan", [1, "a"], "{1}", "int key")
    assert extra["deep"]["l1"]["l2"]["l3"] == str({"l4": {"l5": 1}})


def test_thread_status_method_is_the_http_rendering() -> None:
    thread = PeriodicThread("render-method", 10, lambda: None)
    assert thread.status() == thread_status(thread)


def test_keys_a_subclass_adds_to_get_status_are_shown_and_a_broken_override_is_survived(
        caplog: pytest.LogCaptureFixture) -> None:
    class Extended(PeriodicThread):
        def _execute(self) -> ThreadRunSummary:
            return ThreadRunSummary()

        def get_status(self) -> dict[str, Any]:
            status = super().get_status()
            status.update(queue_depth=3, name="spoofed", handle=object())
            return status

    class Broken(Extended):
        def get_status(self) -> dict[str, Any]:
            raise RuntimeError("oops")

    extended = thread_status(Extended("render-extended", 10))
    assert extended["queue_depth"] == 3 and extended["name"] == "render-extended"
    assert extended["handle"].startswith("<object")
    broken = thread_status(Broken("render-broken", 10))
    assert broken["name"] == "render-broken" and "queue_depth" not in broken
    assert "get_status() of periodic thread render-broken failed" in caplog.text


def test_summary_lists_every_level_even_empty_ones(service: PeriodicStatusService) -> None:
    by_level = service.listing(level="critical")["summary"]["by_level"]
    assert by_level == {"critical": {"total": 1, "running": 1, "active": 1},
                        "high": {"total": 0, "running": 0, "active": 0},
                        "medium": {"total": 0, "running": 0, "active": 0},
                        "low": {"total": 0, "running": 0, "active": 0}}


def test_a_huge_summary_is_cut_to_size() -> None:
    huge = ThreadRunSummary(message="x" * 10_000,
                            extra_info={"many": list(range(5000)), "long": "y" * 10_000,
                                        **{f"k{n}": n for n in range(500)}})
    thread = PeriodicThread("render-huge", 60.0, lambda: huge)
    run_until(thread, 1)
    summary = thread_status(thread)["last_summary"]
    assert len(json.dumps(summary)) < 20_000
    assert summary["message"].endswith("... (10000 chars)")
    extra = summary["extra_info"]
    assert len(extra) == 101 and extra["..."] == "402 more entries"
    assert extra["many"][:3] == [0, 1, 2] and extra["many"][-1] == "... 4900 more items"
    assert extra["long"].startswith("yyy") and len(extra["long"]) < 2100


def _blocked_in_named_wait(release: Any) -> None:
    release.wait(30)


@pytest.mark.parametrize(("level", "shown"), [("critical", True), ("high", True),
                                              ("medium", False), ("low", False)])
def test_a_stalled_thread_of_a_health_level_carries_its_stack(level: str, shown: bool) -> None:
    release = threading.Event()
    thread = PeriodicThread(f"stuck-{level}", 0.02, lambda: _blocked_in_named_wait(release),
                            level=level)
    thread.start()
    try:
        wait_until(lambda: thread.total_runs == 0 and not thread.is_active, 10,
                   message="the thread stalled in its first run")
        status = thread_status(thread)
        assert ("stack" in status) is shown and ("stalled_since" in status) is shown
        if shown:
            functions = [line.split(" (")[0] for line in status["stack"]]
            at = next(i for i, name in enumerate(functions)
                      if name.endswith("test_periodic_status:_blocked_in_named_wait"))
            assert all(name.startswith("threading:") for name in functions[at + 1:])
            assert status["stalled_since"] == status["last_run_time"]
            entry = PeriodicStatusService(lambda: [status]).health()["unhealthy_threads"][0]
            assert entry["stack"] == status["stack"]
    finally:
        release.set()
        thread.stop()
    assert "stack" not in thread_status(thread)  # stopped: nowhere to be
