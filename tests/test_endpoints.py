"""The endpoint table: one row per endpoint, read by every part of the blueprint."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from common_api import bp, config
from common_api.blueprint import VIEWS
from common_api.endpoints import BY_NAME, ENDPOINTS, PathClaims, lookup
from common_api.extension import get_state


@pytest.fixture(autouse=True)
def scripts_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps of this module serve /run_script (off unless COMMON_API_SCRIPT_ENABLED)."""
    monkeypatch.setenv("COMMON_API_SCRIPT_ENABLED", "true")


AUTOMATIC = {"HEAD", "OPTIONS"}


def routes(app: Flask) -> dict[str, tuple[str, set[str]]]:
    return {rule.endpoint: (rule.rule, set(rule.methods or ()) - AUTOMATIC)
            for rule in app.url_map.iter_rules() if rule.endpoint.startswith("common_api.")}


def test_every_row_is_a_route_with_its_methods_and_nothing_else(app: Flask) -> None:
    assert routes(app) == {f"common_api.{endpoint.name}": (endpoint.rule, set(endpoint.methods))
                           for endpoint in ENDPOINTS}
    assert set(VIEWS) == set(BY_NAME)


def test_the_openapi_document_describes_the_rows_and_their_methods(app: Flask) -> None:
    paths = app.test_client().get("/openapi.json").get_json()["paths"]
    described = {path: {method.upper() for method in operations if method != "parameters"}
                 for path, operations in paths.items()}
    assert described == {endpoint.openapi_path: set(endpoint.methods) for endpoint in ENDPOINTS}
    assert paths["/loglevel"]["post"]["responses"] == paths["/loglevel"]["get"]["responses"]


def test_a_disabled_endpoint_is_not_registered_at_all() -> None:
    app = Flask("without_env")
    app.config[config.DISABLED_ENDPOINTS] = "env, metrics/reset"
    app.register_blueprint(bp)
    assert "common_api.env" not in app.view_functions
    assert "common_api.env" not in routes(app)
    assert "common_api.reset_metrics" not in routes(app)
    assert "common_api.metrics" in routes(app)


def test_a_host_route_on_a_disabled_endpoints_path_answers() -> None:
    app = Flask("own_env")
    app.config[config.DISABLED_ENDPOINTS] = "env"
    app.register_blueprint(bp)

    @app.get("/env")
    def host_env() -> str:
        return "the host's own /env"

    client = app.test_client()
    assert client.get("/env").get_data(as_text=True) == "the host's own /env"
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/env" not in paths


def test_a_disabled_endpoint_answers_the_hosts_404() -> None:
    app = Flask("no_scripts")
    app.config[config.DISABLED_ENDPOINTS] = "run_script"

    @app.errorhandler(404)
    def host_404(error: Exception) -> tuple[str, int]:
        return "host 404", 404

    app.register_blueprint(bp)
    response = app.test_client().post("/run_script")
    assert (response.status_code, response.get_data(as_text=True)) == (404, "host 404")


@pytest.mark.parametrize(("spelling", "name"), [
    ("run_script", "run_script"), ("/run_script", "run_script"), ("metrics/reset", "reset_metrics"),
    ("reset-metrics", "reset_metrics"), ("/periodic-threads/{thread_name}", "periodic_thread"),
    ("periodic-threads", "periodic_threads"), ("openapi.json", "openapi"), (" ENV ", "env")])
def test_operators_name_an_endpoint_by_its_name_or_path(spelling: str, name: str) -> None:
    endpoint = lookup(spelling)
    assert endpoint is not None and endpoint.name == name
    assert config.resolve({config.DISABLED_ENDPOINTS: spelling}, {})[
        config.DISABLED_ENDPOINTS] == (name,)


def test_guarded_only_when_level_is_given() -> None:
    loglevel = BY_NAME["loglevel"]
    assert not loglevel.is_guarded("GET", {"logger_name": "x"})
    assert loglevel.is_guarded("GET", {"logger_name": "x", "level": "INFO"})
    assert loglevel.changes_state("POST", {"level": "INFO"})
    assert loglevel.is_guarded("HEAD", {"level": "INFO"})
    assert not loglevel.changes_state("OPTIONS", {"level": "INFO"})
    assert BY_NAME["env"].is_guarded("GET", {}) and not BY_NAME["env"].changes_state("GET", {})
    assert BY_NAME["run_script"].changes_state("POST", {})
    assert not BY_NAME["metrics"].is_guarded("GET", {})


def test_paths_belong_to_an_endpoint_by_whole_segments() -> None:
    claims = PathClaims()
    claims.add("", ENDPOINTS)
    owner = {path: getattr(claims.owner(path), "name", None) for path in [
        "/metrics", "/metrics/", "/metrics/x", "/metrics/reset/x", "/metrics-dashboard",
        "/environment", "/loglevelx", "/threadsafe/x", "/periodic-threads/a/b",
        "/periodic-threads-x", "/", ""]}
    assert owner == {
        "/metrics": "metrics", "/metrics/": "metrics", "/metrics/x": "metrics",
        "/metrics/reset/x": "reset_metrics", "/metrics-dashboard": None, "/environment": None,
        "/loglevelx": None, "/threadsafe/x": None, "/periodic-threads/a/b": "periodic_threads",
        "/periodic-threads-x": None, "/": None, "": None}
    prefixed = PathClaims()
    prefixed.add("/ops/", ENDPOINTS)
    assert prefixed.owner("/ops/env/x") is BY_NAME["env"]
    assert prefixed.owner("/ops/whatever") is None and prefixed.owner("/opsx/env") is None
    assert prefixed.owner("/env") is None


def test_each_registration_mounts_its_own_paths() -> None:
    app = Flask("twice")
    app.register_blueprint(bp)
    app.register_blueprint(bp, name="ops", url_prefix="/ops")
    client = app.test_client()
    assert client.get("/ops/periodic-threads-health").status_code == 200
    assert client.get("/ops/metrics/x").get_data(as_text=True) == "Not found: GET /ops/metrics/x"
    assert get_state(app).endpoint_of("ops.env") is BY_NAME["env"]
    assert client.get("/ops/env", headers={"Origin": "https://evil.example"}).status_code == 403


def test_the_openapi_document_is_built_once_per_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from common_api.web import openapi

    reads: list[int] = []
    packaged = openapi.packaged_openapi

    def counted() -> dict[str, Any]:
        reads.append(1)
        return packaged()

    monkeypatch.setattr(openapi, "packaged_openapi", counted)
    app = Flask("openapi_once")
    app.register_blueprint(bp, url_prefix="/ops")
    client = app.test_client()
    first = client.get("/ops/openapi.json").get_json()
    second = client.get("/ops/openapi.json", base_url="http://localhost/svc").get_json()
    assert len(reads) == 1
    assert first["servers"] == [{"url": "/ops"}] and second["servers"] == [{"url": "/svc/ops"}]
    assert first["paths"] == second["paths"]
