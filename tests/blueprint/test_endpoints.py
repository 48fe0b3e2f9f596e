"""Every seed endpoint through Flask's test client: formats, filters, errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from common_api.periodic import (
    PeriodicThread,
    PeriodicThreadRegistry,
    ThreadLevel,
    create_periodic_thread,
)


@pytest.fixture(autouse=True)
def scripts_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps of this module serve /run_script (off unless COMMON_API_SCRIPT_ENABLED)."""
    monkeypatch.setenv("COMMON_API_SCRIPT_ENABLED", "true")


TEXT = "text/plain; charset=utf-8"


@pytest.fixture
def engine_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("lmcache.v1.cache_engine")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield logger
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def periodic() -> Iterator[list[PeriodicThread]]:
    """A critical, a high and a low periodic thread, running; stopped afterwards."""
    ran = threading.Event()
    threads = [
        create_periodic_thread("heartbeat", 0.05, ran.set, level=ThreadLevel.CRITICAL),
        create_periodic_thread("syncer", 0.05, lambda: True, level=ThreadLevel.HIGH),
        create_periodic_thread("reporter", 60, lambda: None, level=ThreadLevel.LOW,
                               init_wait=60),
    ]
    for thread in threads:
        thread.start()
    assert ran.wait(5)
    yield threads
    registry = PeriodicThreadRegistry.get_instance()
    for thread in threads:
        thread.stop(timeout=5)
        registry.unregister(thread.name)


# /env ---------------------------------------------------------------------------------

def test_env_is_sorted_json_with_secrets_masked(client: FlaskClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZZ_PLAIN", "visible")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    response = client.get("/env")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    body = response.get_json()
    assert list(body) == sorted(body)
    assert body["ZZ_PLAIN"] == "visible"
    assert body["DB_PASSWORD"] == "******"
    assert "hunter2" not in response.get_data(as_text=True)


# /loglevel ----------------------------------------------------------------------------

def test_loglevel_list_matches_seed_text(client: FlaskClient,
                                         engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel")
    assert response.status_code == 200
    assert response.content_type == TEXT
    text = response.get_data(as_text=True)
    assert text.startswith("=== Loggers and Levels ===\n")
    assert "\nlmcache.v1.cache_engine: WARNING\n" in text


def test_loglevel_get_matches_seed_text(client: FlaskClient,
                                        engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel?logger_name=lmcache.v1.cache_engine")
    assert response.get_data(as_text=True) == "lmcache.v1.cache_engine: WARNING"


def test_loglevel_set_matches_seed_text_and_sets_handlers(
        client: FlaskClient, engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel?logger_name=lmcache.v1.cache_engine&level=debug")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == (
        "Set lmcache.v1.cache_engine level to DEBUG (including all handlers)")
    assert engine_logger.level == logging.DEBUG
    assert engine_logger.handlers[0].level == logging.DEBUG


def test_loglevel_invalid_level_is_400_and_changes_nothing(
        client: FlaskClient, engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel?logger_name=lmcache.v1.cache_engine&level=INVALID_LEVEL")
    assert response.status_code == 400
    assert response.content_type == TEXT
    assert response.get_data(as_text=True) == "Invalid log level: INVALID_LEVEL"
    assert engine_logger.level == logging.WARNING


def test_loglevel_level_without_logger_name_is_400(client: FlaskClient) -> None:
    response = client.get("/loglevel?level=DEBUG")
    assert response.status_code == 400
    assert "logger_name" in response.get_data(as_text=True)


def test_loglevel_unknown_logger_is_404(client: FlaskClient) -> None:
    response = client.get("/loglevel?logger_name=no.such.logger.anywhere")
    assert response.status_code == 404
    assert response.get_data(as_text=True) == "Logger not found: no.such.logger.anywhere"


def test_loglevel_json_form_gives_configured_and_effective(
        client: FlaskClient, engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel", headers={"Accept": "application/json"})
    assert response.content_type == "application/json"
    loggers = {entry["name"]: entry for entry in response.get_json()["loggers"]}
    assert loggers["lmcache.v1.cache_engine"] == {
        "name": "lmcache.v1.cache_engine", "level": "WARNING", "effective_level": "WARNING",
        "revert": None, "disabled": False}
    assert client.get("/loglevel?logger_name=lmcache.v1.cache_engine&format=json").get_json()[
        "level"] == "WARNING"


def test_loglevel_json_errors_are_json(client: FlaskClient) -> None:
    response = client.get("/loglevel?logger_name=x&level=LOUD&format=json")
    assert response.status_code == 400
    assert response.get_json() == {"error": "Invalid log level: LOUD"}


def test_unknown_format_is_400(client: FlaskClient) -> None:
    response = client.get("/threads?format=xml")
    assert response.status_code == 400
    assert "Invalid format: xml" in response.get_data(as_text=True)


# /metrics -----------------------------------------------------------------------------

def test_metrics_is_prometheus_text(client: FlaskClient) -> None:
    client.get("/periodic-threads-health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    assert ('flask_http_request_total{endpoint="common_api.periodic_threads_health",'
            'method="GET",status="200"} 1.0') in text


def test_unknown_paths_share_one_series(client: FlaskClient) -> None:
    for index in range(20):
        client.get(f"/no/such/path/{index}")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'flask_http_request_total{endpoint="unmatched",method="GET",status="404"} 20.0' in text
    assert "/no/such/path" not in text


def test_reset_answers_ok_and_zeroes_request_counters(client: FlaskClient) -> None:
    for _ in range(3):
        client.get("/periodic-threads-health")
    response = client.post("/metrics/reset")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    assert response.content_type == TEXT
    text = client.get("/metrics").get_data(as_text=True)
    assert ('flask_http_request_total{endpoint="common_api.periodic_threads_health",'
            'method="GET",status="200"} 0.0') in text


def test_reset_needs_post(client: FlaskClient) -> None:
    assert client.get("/metrics/reset").status_code == 405


def test_periodic_threads_are_exported_as_series(client: FlaskClient,
                                                 periodic: list[PeriodicThread]) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert 'common_api_periodic_thread_active{level="critical",thread="heartbeat"} 1.0' in text
    assert 'common_api_periodic_thread_runs_total{level="critical",thread="heartbeat"}' in text
    assert 'common_api_periodic_thread_running{level="low",thread="reporter"} 1.0' in text


# /threads -----------------------------------------------------------------------------

def test_threads_text_has_blocks_and_summary(client: FlaskClient) -> None:
    text = client.get("/threads").get_data(as_text=True)
    blocks = text.split("\n\n")
    assert all(block.startswith("Thread: ") for block in blocks[:-1])
    assert all(block.splitlines()[1] == "Stack trace:" for block in blocks[:-1])
    assert blocks[-1] == f"=== Thread Summary ===\nTotal threads: {len(blocks) - 1}\n"


def test_threads_name_filter(client: FlaskClient) -> None:
    text = client.get("/threads?name=mainthr").get_data(as_text=True)
    assert text.startswith("Thread: <_MainThread(MainThread, started")
    assert text.endswith("Total threads: 1\n")


def test_threads_id_filter_and_json(client: FlaskClient) -> None:
    ident = threading.main_thread().ident
    body = client.get(f"/threads?thread_id={ident}&format=json").get_json()
    assert body["total"] == 1
    (thread,) = body["threads"]
    assert set(thread) == {"name", "ident", "native_id", "daemon", "frames", "frames_omitted"}
    assert thread["ident"] == ident
    assert {"file", "line", "function", "code"} <= set(thread["frames"][0])


@pytest.mark.parametrize("value", ["abc", "1.5", "", "0x10", "-1", "1_000", "%2B5",
                                   "9223372036854775808", "١٢"])
def test_threads_bad_thread_id_is_400(client: FlaskClient, value: str) -> None:
    response = client.get(f"/threads?thread_id={value}")
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("Invalid thread_id")


# /periodic-threads --------------------------------------------------------------------

def test_periodic_threads_listing_shape(client: FlaskClient,
                                        periodic: list[PeriodicThread]) -> None:
    response = client.get("/periodic-threads")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body["summary"]) == {"total_count", "running_count", "active_count", "by_level"}
    assert body["summary"]["by_level"]["critical"] == {"total": 1, "running": 1, "active": 1}
    heartbeat = next(t for t in body["threads"] if t["name"] == "heartbeat")
    for key, kind in [("name", str), ("level", str), ("is_running", bool), ("is_active", bool),
                      ("last_run_time", str), ("interval", float), ("init_wait", float),
                      ("last_run_ago", float), ("total_runs", int), ("failed_runs", int),
                      ("success_rate", float)]:
        assert isinstance(heartbeat[key], kind), key
    assert "last_summary" in heartbeat


def test_periodic_threads_filters(client: FlaskClient, periodic: list[PeriodicThread]) -> None:
    names = lambda url: [t["name"] for t in client.get(url).get_json()["threads"]]  # noqa: E731
    assert names("/periodic-threads?level=critical") == ["heartbeat"]
    assert names("/periodic-threads?level=LOW&running_only=yes") == ["reporter"]
    periodic[1].stop()
    assert "syncer" not in names("/periodic-threads?running_only=1")
    assert "syncer" in names("/periodic-threads?running_only=false")


@pytest.mark.parametrize("query", ["level=unknown", "running_only=maybe", "active_only=2"])
def test_periodic_threads_bad_parameters_are_400_json(client: FlaskClient, query: str) -> None:
    response = client.get(f"/periodic-threads?{query}")
    assert response.status_code == 400
    assert set(response.get_json()) == {"error"}


def test_periodic_thread_by_name_and_not_found(client: FlaskClient,
                                              periodic: list[PeriodicThread]) -> None:
    assert client.get("/periodic-threads/heartbeat").get_json()["level"] == "critical"
    response = client.get("/periodic-threads/heartbeat2")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Thread not found: heartbeat2"}


def test_health_is_200_then_503_when_a_critical_thread_stops(
        client: FlaskClient, periodic: list[PeriodicThread]) -> None:
    healthy = client.get("/periodic-threads-health")
    assert (healthy.status_code, healthy.get_json()) == (
        200, {"healthy": True, "unhealthy_count": 0, "unhealthy_threads": [], "workers": 1})
    periodic[0].stop()
    response = client.get("/periodic-threads-health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["healthy"] is False and body["unhealthy_count"] == 1
    entry = body["unhealthy_threads"][0]
    assert {"name", "level", "last_run_ago", "interval"} <= set(entry)
    assert (entry["name"], entry["level"], entry["interval"]) == ("heartbeat", "critical", 0.05)


# access -------------------------------------------------------------------------------

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
GUARDED = [("get", "/env"), ("get", "/loglevel?logger_name=x&level=INFO"),
           ("post", "/metrics/reset"), ("post", "/run_script")]
OPEN = ["/loglevel", "/metrics", "/threads", "/periodic-threads", "/periodic-threads-health"]


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_guarded_endpoints_refuse_remote_clients(client: FlaskClient, method: str,
                                                 path: str) -> None:
    response = getattr(client, method)(path, environ_base=REMOTE,
                                       headers={"X-Forwarded-For": "127.0.0.1"})
    assert response.status_code == 403
    assert "COMMON_API_TOKEN" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", OPEN)
def test_read_only_endpoints_answer_remote_clients(client: FlaskClient, path: str) -> None:
    assert client.get(path, environ_base=REMOTE).status_code == 200
    spoofed = {"X-Forwarded-For": "127.0.0.1"}
    assert client.get(path, environ_base=REMOTE, headers=spoofed).status_code == 200


def test_token_is_required_everywhere_when_configured() -> None:
    from flask import Flask

    from common_api import bp

    app = Flask("tokened")
    app.config["COMMON_API_TOKEN"] = "t0ken"
    app.register_blueprint(bp)
    client = app.test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    ok = client.get("/env", environ_base=REMOTE, headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 200
    assert json.loads(ok.data)["PATH"]


def test_health_and_worker_count_are_series(client: FlaskClient,
                                            periodic: list[PeriodicThread]) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert "\ncommon_api_healthy 1.0\n" in text
    assert "\ncommon_api_workers 1.0\n" in text
    periodic[0].stop()
    assert "\ncommon_api_healthy 0.0\n" in client.get("/metrics").get_data(as_text=True)


def test_timed_level_over_http(client: FlaskClient, engine_logger: logging.Logger) -> None:
    response = client.get("/loglevel?logger_name=lmcache.v1.cache_engine&level=DEBUG"
                          "&duration=300")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith(
        "Set lmcache.v1.cache_engine level to DEBUG (including all handlers) for 300 seconds"
        ", then WARNING")
    listing = client.get("/loglevel").get_data(as_text=True)
    assert "\nlmcache.v1.cache_engine: DEBUG (until " in listing
    entry = client.get("/loglevel?logger_name=lmcache.v1.cache_engine&format=json").get_json()
    assert entry["revert"]["level"] == "WARNING" and 299 < entry["revert"]["in_seconds"] <= 300
    client.get("/loglevel?logger_name=lmcache.v1.cache_engine&level=WARNING")


@pytest.mark.parametrize("query", ["logger_name=x&duration=5",
                                   "logger_name=x&level=INFO&duration=0",
                                   "logger_name=x&level=INFO&duration=soon"])
def test_bad_durations_are_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/loglevel?{query}")
    assert response.status_code == 400
    assert "duration" in response.get_data(as_text=True)


def test_grouped_dump_text_and_json(client: FlaskClient) -> None:
    text = client.get("/threads?group=true").get_data(as_text=True)
    assert text.startswith("Threads: ")
    assert "\nDistinct stacks: " in text
    body = client.get("/threads?group=yes&format=json").get_json()
    counts = [group["count"] for group in body["groups"]]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == body["total"]
    assert client.get("/threads?group=true&scope=all").status_code == 200
    assert client.get("/threads?group=perhaps").status_code == 400
