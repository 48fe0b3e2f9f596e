from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask
from prometheus_client import Counter
from werkzeug.exceptions import HTTPException

from common_api import bp
from common_api.extension import get_state


@pytest.fixture(autouse=True)
def scripts_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps of this module serve /run_script (off unless COMMON_API_SCRIPT_ENABLED)."""
    monkeypatch.setenv("COMMON_API_SCRIPT_ENABLED", "true")


def test_two_apps_in_one_process_have_separate_state() -> None:
    first, second = Flask("first"), Flask("second")
    first.register_blueprint(bp)
    second.register_blueprint(bp, url_prefix="/ops")
    assert get_state(first) is not get_state(second)
    assert get_state(first).registry is not get_state(second).registry
    first.test_client().get("/env")
    body = second.test_client().get("/ops/metrics").get_data(as_text=True)
    assert 'endpoint="common_api.env"' not in body
    assert first.test_client().get("/metrics").status_code == 200


def test_url_prefix_serves_every_endpoint_under_it() -> None:
    app = Flask("prefixed")
    app.register_blueprint(bp, url_prefix="/admin")
    client = app.test_client()
    assert client.get("/admin/periodic-threads-health").status_code == 200
    assert client.get("/periodic-threads-health").status_code == 404


def test_app_state_is_created_only_when_missing() -> None:
    app = Flask("with_state")
    existing = SimpleNamespace(engine="kept")
    app.state = existing  # type: ignore[attr-defined]
    app.register_blueprint(bp)
    assert app.state is existing  # type: ignore[attr-defined]
    fresh = Flask("without_state")
    fresh.register_blueprint(bp)
    assert isinstance(fresh.state, SimpleNamespace)  # type: ignore[attr-defined]


def test_config_defaults_are_filled_in() -> None:
    app = Flask("defaults")
    app.register_blueprint(bp)
    assert app.config["COMMON_API_SCRIPT_TIMEOUT"] == 10.0
    assert app.config["COMMON_API_SCRIPT_ALLOWED_IMPORTS"] == ()


def test_bad_config_stops_registration_naming_the_key() -> None:
    app = Flask("bad")
    app.config["COMMON_API_SCRIPT_TIMEOUT"] = "soon"
    with pytest.raises(RuntimeError, match="COMMON_API_SCRIPT_TIMEOUT"):
        app.register_blueprint(bp)


def test_host_metrics_in_default_registry_are_exposed(client) -> None:  # type: ignore[no-untyped-def]
    counter = Counter("host_widgets_made", "widgets made by the host")
    counter.inc(3)
    body = client.get("/metrics").get_data(as_text=True)
    assert "host_widgets_made_total 3.0" in body


def test_every_response_is_not_cached(client) -> None:  # type: ignore[no-untyped-def]
    for path in ["/env", "/loglevel", "/metrics", "/threads", "/periodic-threads",
                 "/periodic-threads-health"]:
        assert client.get(path).headers["Cache-Control"] == "no-store", path


# the host's own paths keep the host's 404 and 405 ----------------------------------------

def host_app(prefix: str | None = None) -> Flask:
    app = Flask("host_with_handlers")

    @app.errorhandler(404)
    def host_404(error: Exception) -> tuple[str, int]:
        return "host 404", 404

    @app.errorhandler(405)
    def host_405(error: Exception) -> tuple[str, int]:
        return "host 405", 405

    @app.post("/metrics-upload")
    def metrics_upload() -> str:
        return "uploaded"

    @app.post("/ops/upload")
    def ops_upload() -> str:
        return "uploaded"

    @app.post("/metrics/upload")
    def nested_upload() -> str:
        return "uploaded"

    app.register_blueprint(bp, url_prefix=prefix)
    return app


@pytest.mark.parametrize("path", ["/environment", "/metrics-dashboard", "/loglevelx",
                                  "/threadsafe/x", "/run_scripts", "/openapi.jsonx"])
def test_host_paths_that_start_with_an_endpoint_name_get_the_hosts_404(path: str) -> None:
    response = host_app().test_client().get(path)
    assert (response.status_code, response.get_data(as_text=True)) == (404, "host 404")


def test_a_host_post_only_route_gets_the_hosts_405() -> None:
    client = host_app().test_client()
    for path in ["/metrics-upload", "/metrics/upload"]:
        response = client.get(path)
        assert (response.status_code, response.get_data(as_text=True)) == (405, "host 405")


def test_under_a_prefix_only_the_blueprints_rules_are_claimed() -> None:
    client = host_app("/ops").test_client()
    assert client.get("/ops/upload").get_data(as_text=True) == "host 405"
    for path in ["/ops/whatever", "/ops-status", "/ops/environment", "/ops/metrics-dashboard"]:
        assert client.get(path).get_data(as_text=True) == "host 404", path
    assert client.get("/ops/metrics/x").get_data(as_text=True) == "Not found: GET /ops/metrics/x"
    assert client.delete("/ops/metrics").get_data(as_text=True) == (
        "Method not allowed: DELETE /ops/metrics")


def test_the_blueprints_own_paths_keep_its_answers() -> None:
    client = host_app().test_client()
    assert client.get("/threads/x").get_data(as_text=True) == "Not found: GET /threads/x"
    assert client.get("/env/x").get_json() == {"error": "Not found: GET /env/x"}
    refused = client.get("/run_script")
    assert refused.get_data(as_text=True) == "Method not allowed: GET /run_script"
    assert set(refused.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_a_host_handler_for_every_http_error_keeps_the_hosts_paths() -> None:
    app = Flask("host_with_class_handler")

    @app.errorhandler(HTTPException)
    def host_http_error(error: HTTPException) -> tuple[str, int]:
        return f"host {error.code}", error.code or 500

    @app.post("/upload")
    def upload() -> str:
        return "uploaded"

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/not-ours").get_data(as_text=True) == "host 404"
    assert client.get("/upload").get_data(as_text=True) == "host 405"
    assert client.get("/metrics/x").get_data(as_text=True) == "Not found: GET /metrics/x"
