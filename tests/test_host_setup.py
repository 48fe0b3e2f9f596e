"""Host setups the blueprint must live with (issue 11): prometheus-flask-exporter, the
host's own routes, do_not_track, and /metrics' exposition conventions (gzip, name[])."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_flask_exporter import PrometheusMetrics
from support import OPENMETRICS, LiveServer, assert_valid_exposition

from common_api import bp
from common_api.extension import get_state


@pytest.fixture
def default_registry() -> Iterator[None]:
    """prometheus_client's default registry as it was: an exporter made the usual way
    registers its series there, and they must not leak into later tests."""
    before = set(REGISTRY._collector_to_names)  # type: ignore[attr-defined]
    yield
    for collector in set(REGISTRY._collector_to_names) - before:  # type: ignore[attr-defined]
        REGISTRY.unregister(collector)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _scrape(app: Flask) -> tuple[str, str]:
    client = app.test_client()
    text = client.get("/metrics")
    openmetrics = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert text.status_code == openmetrics.status_code == 200
    assert openmetrics.content_type.startswith("application/openmetrics-text")
    return text.get_data(as_text=True), openmetrics.get_data(as_text=True)


def _host(order: str) -> Flask:
    app = Flask(f"exporter_{order}")
    if order == "before":
        PrometheusMetrics(app)
        app.register_blueprint(bp)
    else:
        app.register_blueprint(bp)
        PrometheusMetrics(app)

    @app.get("/hit")
    def hit() -> Any:
        return jsonify(ok=True)

    return app


@pytest.mark.parametrize("order", ["before", "after"])
def test_host_exporter_shares_one_exposition_and_counts_each_request_once(
        order: str, default_registry: None) -> None:
    app = _host(order)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/hit").status_code == 200
    text, openmetrics = _scrape(app)
    assert_valid_exposition(text, openmetrics)
    samples = _samples(text)
    assert samples[("flask_http_request_duration_seconds_count",
                    (("method", "GET"), ("path", "/hit"), ("status", "200")))] == 3
    assert ("common_api_info", (("version", "0.1.0"),)) in samples
    assert ("flask_exporter_info", (("version", PrometheusMetrics(None).version),)) in samples


def test_host_exporter_route_serves_common_apis_exposition_with_its_access_rule(
        default_registry: None) -> None:
    app = Flask("exporter_token")
    app.config["COMMON_API_TOKEN"] = "s3cret"
    PrometheusMetrics(app)
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    body = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert "common_api_info" in body.get_data(as_text=True)


def test_do_not_track_on_the_exposed_exporter_is_honoured() -> None:
    app = Flask("untracked")
    app.register_blueprint(bp)
    exporter = get_state(app).exporter

    @app.get("/quiet")
    @exporter.do_not_track()
    def quiet() -> Any:
        return jsonify(ok=True)

    @app.get("/loud")
    def loud() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    for path in ("/quiet", "/loud", "/quiet"):
        assert client.get(path).status_code == 200
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    counted = {dict(labels)["endpoint"] for (name, labels) in samples
               if name == "flask_http_request_total"}
    assert "loud" in counted and "quiet" not in counted


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_host_route_registered_before_the_blueprint_is_reported_naming_both(
        caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("env_before")

    @app.get("/env")
    def host_env() -> Any:
        return jsonify(host=True)

    with caplog.at_level(logging.WARNING, "common_api"):
        app.register_blueprint(bp)
    [warning] = [w for w in _warnings(caplog) if "route clash" in w]
    assert "/env" in warning and "'host_env'" in warning and "'common_api.env'" in warning
    assert "the host's route /env (endpoint 'host_env') answers" in warning
    assert app.test_client().get("/env").get_json() == {"host": True}


def test_host_route_registered_after_the_blueprint_is_reported_at_the_first_request(
        caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("metrics_after")
    app.register_blueprint(bp)

    @app.get("/metrics")
    def host_metrics() -> str:
        return "host"

    @app.errorhandler(404)
    def host_not_found(error: Exception) -> tuple[str, int]:
        return "host 404", 404

    with caplog.at_level(logging.WARNING, "common_api"):
        client = app.test_client()
        assert "common_api_info" in client.get("/metrics").get_data(as_text=True)
        client.get("/metrics")
    clashes = [w for w in _warnings(caplog) if "route clash" in w]
    assert len(clashes) == 1
    assert "'host_metrics'" in clashes[0] and "'common_api.metrics'" in clashes[0]
    assert "is never reached" in clashes[0]
    assert client.get("/nowhere").get_data(as_text=True) == "host 404"


def test_a_host_without_clashing_routes_gets_no_warning(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    app = Flask("quiet_host")

    @app.get("/<path:page>")
    def catch_all(page: str) -> str:
        return page

    @app.get("/work")
    def work() -> str:
        return "work"

    with caplog.at_level(logging.WARNING, "common_api"):
        app.register_blueprint(bp)
        client = app.test_client()
        assert client.get("/work").get_data(as_text=True) == "work"
        assert client.get("/anything").get_data(as_text=True) == "anything"
    assert _warnings(caplog) == []


def test_metrics_are_gzipped_when_the_scraper_accepts_it(client: Any) -> None:
    plain = client.get("/metrics")
    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert "Content-Encoding" not in plain.headers
    assert b"common_api_info" in gzip.decompress(zipped.get_data())


def test_metrics_name_filter_returns_only_the_named_samples(client: Any) -> None:
    client.get("/env")
    body = client.get("/metrics?name[]=common_api_info&name[]=flask_http_request_total")
    names = {s.name for f in text_string_to_metric_families(body.get_data(as_text=True))
             for s in f.samples}
    assert names == {"common_api_info", "flask_http_request_total"}


APPS = Path(__file__).resolve().parent / "apps"


def _apps_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, **extra}


def _server_scrape(server: LiveServer, path: str = "/metrics") -> tuple[str, str]:
    text = server.get(path)
    openmetrics = server.get(path, headers={"Accept": OPENMETRICS})
    assert text.status_code == openmetrics.status_code == 200, (
        text.text[-500:], openmetrics.text[-500:], server.log()[-4000:])
    return text.text, openmetrics.text


@pytest.mark.server
@pytest.mark.parametrize("order", ["before", "after"])
def test_host_exporter_under_multiworker_gunicorn_counts_each_request_once(
        order: str, start_server: Callable[..., LiveServer]) -> None:
    server = start_server("--app", "exporter_app:app", "--workers", "2",
                          env=_apps_env(EXPORTER_ORDER=order), timeout=60)
    pids = set()
    for _ in range(20):
        response = server.get("/hit")
        assert response.status_code == 200
        pids.add(response.json()["pid"])
    for _ in range(4):
        text, openmetrics = _server_scrape(server)
        assert_valid_exposition(text, openmetrics)
        counted = [(dict(labels), value) for (name, labels), value in _samples(text).items()
                   if name == "flask_http_request_duration_seconds_count"
                   and (dict(labels).get("path") == "/hit"
                        or dict(labels).get("endpoint") == "hit")]
        assert [value for _, value in counted] == [20], counted
        assert "common_api_info" in text
    assert "without common_api's state directory" not in server.log()


@pytest.mark.server
def test_two_apps_in_one_process_keep_separate_request_series_and_resets(
        start_server: Callable[..., LiveServer]) -> None:
    server = start_server("--app", "two_apps:app", "--workers", "2", env=_apps_env(),
                          ready_path="/a/metrics", timeout=60)
    for _ in range(10):
        assert server.get("/a/hit").json()["app"] == "first"
        assert server.get("/b/hit").json()["app"] == "second"

    def hits(prefix: str) -> float:
        text, openmetrics = _server_scrape(server, f"{prefix}/metrics")
        assert_valid_exposition(text, openmetrics)
        assert "common_api_app" not in text
        return sum(value for (name, labels), value in _samples(text).items()
                   if name == "flask_http_request_total" and dict(labels)["endpoint"] == "hit")

    assert (hits("/a"), hits("/b")) == (10, 10)
    assert server.post("/a/metrics/reset").status_code == 200
    assert (hits("/a"), hits("/b")) == (0, 10)
    # the second app's reset keeps its own baseline (metrics-baseline-app1.json), which
    # every worker reads: several scrapes, whichever worker answers
    assert server.post("/b/metrics/reset").status_code == 200
    for _ in range(3):
        assert server.get("/a/hit").json()["app"] == "first"
        assert server.get("/b/hit").json()["app"] == "second"
    assert [(hits("/a"), hits("/b")) for _ in range(6)] == [(3, 3)] * 6


def test_under_a_prefix_beside_the_host_s_exporter_start_up_says_where_to_scrape(
        caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("exporter_beside_prefix")
    PrometheusMetrics(app, registry=CollectorRegistry())
    with caplog.at_level(logging.WARNING, "common_api"):
        app.register_blueprint(bp, url_prefix="/ops")
        client = app.test_client()
        client.get("/ops/periodic-threads-health")
        client.get("/ops/periodic-threads-health")
    said = [w for w in _warnings(caplog) if "without common_api's series" in w]
    assert len(said) == 1, _warnings(caplog)
    assert "serves /metrics on app 'exporter_beside_prefix'" in said[0]
    assert "scrape /ops/metrics" in said[0]


def test_an_exporter_sharing_the_route_is_not_told_to_scrape_elsewhere(
        caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("exporter_shared")
    PrometheusMetrics(app, registry=CollectorRegistry())
    with caplog.at_level(logging.WARNING, "common_api"):
        app.register_blueprint(bp)
        app.test_client().get("/periodic-threads-health")
    assert not [w for w in _warnings(caplog) if "without common_api's series" in w]
    assert [w for w in _warnings(caplog) if "serves common_api's exposition" in w]
