"""End to end: ``common-api serve`` (real gunicorn, the demo) answers every seed example."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer, wait_until

pytestmark = pytest.mark.server

TEXT = "text/plain; charset=utf-8"
WORKERS = 2  # common-api serve's default
SEED_SCRIPT = b"""lmcache_engine = app.state.lmcache_adapter.lmcache_engine

result = {
    "is_first_rank": lmcache_engine.metadata.is_first_rank(),
    "model_version": lmcache_engine.metadata.kv_shape,
}
"""


def test_env(live_server: LiveServer) -> None:
    response = live_server.get("/env")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == sorted(body) and "PATH" in body


def test_loglevel_list_get_set_and_invalid(live_server: LiveServer) -> None:
    listing = live_server.get("/loglevel")
    assert listing.status_code == 200 and listing.headers["Content-Type"] == TEXT
    assert listing.text.startswith("=== Loggers and Levels ===\n")
    assert "\ndemo.heartbeat: NOTSET\n" in listing.text
    assert live_server.get("/loglevel", params={"logger_name": "demo.heartbeat"}).text == (
        "demo.heartbeat: NOTSET")
    done = live_server.get("/loglevel", params={"logger_name": "demo.heartbeat",
                                                "level": "DEBUG"})
    assert done.text == "Set demo.heartbeat level to DEBUG (including all handlers)"
    assert live_server.get("/loglevel", params={"logger_name": "demo.heartbeat"}).text == (
        "demo.heartbeat: DEBUG")
    invalid = live_server.get("/loglevel", params={"logger_name": "demo.heartbeat",
                                                   "level": "INVALID_LEVEL"})
    assert (invalid.status_code, invalid.text) == (400, "Invalid log level: INVALID_LEVEL")


def test_metrics_and_reset(live_server: LiveServer) -> None:
    for _ in range(3):
        assert live_server.get("/work").status_code == 200
    response = live_server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"demo_work_items", "flask_http_request", "common_api_periodic_thread_runs",
            "common_api_info"} <= names
    reset = live_server.post("/metrics/reset")
    assert (reset.status_code, reset.text) == (200, "ok")
    after = {s.name: s.value for f in text_string_to_metric_families(live_server.get(
        "/metrics").text) for s in f.samples if not s.labels}
    assert after["demo_work_items_total"] == 0


def test_threads_all_by_name_and_by_id(live_server: LiveServer) -> None:
    text = live_server.get("/threads").text
    assert text.rstrip().splitlines()[-2] == "=== Thread Summary ==="
    assert "heartbeat" in text
    by_name = live_server.get("/threads", params={"name": "HEARTBEAT"}).text
    assert by_name.endswith("Total threads: 1\n")
    ident = live_server.get("/threads", params={"name": "heartbeat", "format": "json"}).json()[
        "threads"][0]["ident"]
    by_id = live_server.get("/threads", params={"thread_id": ident}).text
    assert by_id.startswith("Thread: <Thread(heartbeat") and by_id.endswith("Total threads: 1\n")
    assert live_server.get("/threads", params={"thread_id": "12x"}).status_code == 400


def test_periodic_threads_seed_examples(live_server: LiveServer) -> None:
    def all_active() -> bool:
        summary = live_server.get("/periodic-threads").json()["summary"]
        return bool(summary["active_count"] == summary["total_count"] == 4 * WORKERS)

    wait_until(all_active, 10, message="demo threads active")
    body = live_server.get("/periodic-threads").json()
    assert set(body["summary"]["by_level"]) == {"critical", "high", "medium", "low"}
    critical = live_server.get("/periodic-threads", params={"level": "critical"}).json()
    assert {t["name"] for t in critical["threads"]} == {"heartbeat"}
    assert len({t["pid"] for t in critical["threads"]}) == WORKERS
    running = live_server.get("/periodic-threads", params={"running_only": "true"}).json()
    assert running["summary"]["running_count"] == 4 * WORKERS
    bad = live_server.get("/periodic-threads", params={"level": "unknown"})
    assert (bad.status_code, bad.json()) == (
        400, {"error": "Invalid level: unknown. Valid values: critical, high, medium, low"})
    one = live_server.get("/periodic-threads/heartbeat")
    assert one.status_code == 200
    assert (one.json()["name"], one.json()["level"]) == ("heartbeat", "critical")
    assert one.json()["pid"] == int(one.headers["X-Worker-Pid"])
    assert len(one.json()["workers"]) == WORKERS
    missing = live_server.get("/periodic-threads/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "Thread not found: nope"})
    health = live_server.get("/periodic-threads-health")
    assert (health.status_code, health.json()) == (
        200, {"healthy": True, "unhealthy_count": 0, "unhealthy_threads": [], "workers": WORKERS})


def test_run_script_seed_example_and_errors(live_server: LiveServer) -> None:
    response = live_server.post("/run_script", files={"script": ("scratch.py", SEED_SCRIPT)})
    assert (response.status_code, response.text) == (
        200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")
    assert response.headers["Content-Type"] == TEXT
    missing = live_server.post("/run_script")
    assert (missing.status_code, missing.text) == (400, "No script file provided")
    denied = live_server.post("/run_script", files={"script": ("x.py", b"import os\n")})
    assert (denied.status_code, denied.text) == (
        500, "Error executing script: Import of 'os' is not allowed")
