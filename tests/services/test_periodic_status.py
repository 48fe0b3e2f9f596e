from __future__ import annotations

from typing import Any

import pytest

from common_api.errors import InvalidInput, NotFound
from common_api.services.periodic_status import PeriodicStatusService


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
