"""Security defaults: token, loopback policy, disabled endpoints, audit, limits, error forms."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common_api import bp

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


def make_app(**config: object) -> Flask:
    app = Flask("secured")
    app.config.update(config)
    app.register_blueprint(bp)
    return app


# token -------------------------------------------------------------------------------

def test_token_file_is_read_once_at_start(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    client = make_app(COMMON_API_TOKEN_FILE=str(token_file)).test_client()
    token_file.write_text("changed")
    assert client.get("/metrics", headers={"Authorization": "Bearer from-file"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer changed"}).status_code == 403


def test_token_from_a_file_stays_out_of_the_app_config(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file")
    app = make_app(COMMON_API_TOKEN_FILE=str(token_file))
    assert "from-file" not in repr(dict(app.config))


def test_unreadable_token_file_stops_start_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="COMMON_API_TOKEN_FILE"):
        make_app(COMMON_API_TOKEN_FILE=str(tmp_path / "missing"))


def test_health_can_be_left_open_for_probes() -> None:
    client = make_app(COMMON_API_TOKEN="t", COMMON_API_HEALTH_PUBLIC=True).test_client()
    assert client.get("/periodic-threads-health", environ_base=REMOTE).status_code == 200
    assert client.get("/periodic-threads", environ_base=REMOTE).status_code == 401


def test_env_values_are_shown_only_to_token_holders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    unmasked_without_token = make_app(COMMON_API_ENV_MASK_SECRETS=False).test_client()
    assert unmasked_without_token.get("/env").get_json()["DB_PASSWORD"] == "******"
    with_token = make_app(COMMON_API_ENV_MASK_SECRETS=False, COMMON_API_TOKEN="t").test_client()
    body = with_token.get("/env", headers={"Authorization": "Bearer t"}).get_json()
    assert body["DB_PASSWORD"] == "hunter2"


# loopback policy ----------------------------------------------------------------------

@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
def test_request_through_a_local_proxy_is_not_loopback(client: FlaskClient, header: str) -> None:
    response = client.get("/env", headers={header: "127.0.0.1"})
    assert response.status_code == 403
    assert "proxy" in response.get_json()["error"]


def test_loopback_trust_can_be_switched_off() -> None:
    client = make_app(COMMON_API_TRUST_LOOPBACK=False).test_client()
    assert client.post("/metrics/reset").status_code == 403
    assert client.get("/metrics").status_code == 200


# disabled endpoints -------------------------------------------------------------------

def test_disabled_endpoints_are_gone() -> None:
    app = make_app(COMMON_API_DISABLED_ENDPOINTS="run_script, /env")
    client = app.test_client()
    response = client.post("/run_script", data={"script": (io.BytesIO(b"result = 1"), "a.py")},
                           content_type="multipart/form-data")
    assert response.status_code == 404
    assert client.get("/run_script").status_code == 404
    assert client.get("/env").status_code == 404
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/run_script" not in paths and "/env" not in paths
    assert "/metrics" in paths


def test_unknown_disabled_endpoint_is_a_config_error() -> None:
    with pytest.raises(RuntimeError, match="COMMON_API_DISABLED_ENDPOINTS"):
        make_app(COMMON_API_DISABLED_ENDPOINTS="shell")


# audit --------------------------------------------------------------------------------

def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "common_api.audit"]


def test_every_state_change_is_audited(client: FlaskClient,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="common_api.audit")
    client.get("/loglevel?logger_name=tests.audit&level=INFO")
    client.post("/metrics/reset")
    client.post("/run_script", data={"script": (io.BytesIO(b"result = 2"), "a.py")},
                content_type="multipart/form-data")
    client.post("/metrics/reset", environ_base=REMOTE)
    client.get("/loglevel")
    lines = audit_lines(caplog)
    assert [line["event"] for line in lines] == [
        "loglevel.set", "metrics.reset", "script.run", "metrics.reset"]
    assert lines[0]["logger"] == "tests.audit" and lines[0]["level"] == "INFO"
    assert lines[0]["client"] == "127.0.0.1" and lines[0]["outcome"] == "ok"
    assert len(str(lines[2]["sha256"])) == 16 and lines[2]["bytes"] == 10
    assert (lines[3]["client"], lines[3]["status"], lines[3]["outcome"]) == (
        "203.0.113.9", 403, "denied")


def test_audit_names_the_token_by_fingerprint_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="common_api.audit")
    client = make_app(COMMON_API_TOKEN="sup3r-s3cret").test_client()
    client.post("/metrics/reset", headers={"Authorization": "Bearer sup3r-s3cret"})
    (line,) = audit_lines(caplog)
    assert isinstance(line["token"], str) and len(line["token"]) == 12
    assert "sup3r-s3cret" not in caplog.text


# limits and error forms ---------------------------------------------------------------

def test_long_query_values_are_400(client: FlaskClient) -> None:
    response = client.get("/threads?name=" + "x" * 5000)
    assert response.status_code == 400
    assert "longer than 1024" in response.get_data(as_text=True)


def test_large_bodies_are_413_before_being_read(client: FlaskClient) -> None:
    response = client.post("/metrics/reset", data=b"x" * 100_000)
    assert response.status_code == 413
    assert response.content_type.startswith("text/plain")


@pytest.mark.parametrize(("path", "json_form"), [
    ("/metrics/x", False), ("/periodic-threads-x", True), ("/env/extra", True),
    ("/threads/1", False)])
def test_404_under_the_blueprint_is_plain_or_json_never_html(client: FlaskClient, path: str,
                                                             json_form: bool) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    assert "<html" not in body.lower()
    if json_form:
        assert response.get_json()["error"].startswith("Not found")
    else:
        assert body == f"Not found: GET {path}"


def test_405_is_plain_text_with_allow(client: FlaskClient) -> None:
    response = client.delete("/metrics")
    assert response.status_code == 405
    assert response.get_data(as_text=True) == "Method not allowed: DELETE /metrics"
    assert "GET" in response.headers["Allow"]


def test_prefixed_blueprint_owns_everything_under_its_prefix() -> None:
    app = Flask("host")

    @app.get("/host-page")
    def host_page() -> str:
        return "host"

    app.register_blueprint(bp, url_prefix="/ops")
    client = app.test_client()
    assert client.get("/ops/whatever").get_data(as_text=True) == "Not found: GET /ops/whatever"
    assert "<" in client.get("/elsewhere").get_data(as_text=True)  # the host's own 404 page


def test_host_404_handler_is_kept_for_host_paths() -> None:
    app = Flask("host_with_handler")

    @app.errorhandler(404)
    def host_404(error: Exception) -> tuple[str, int]:
        return "host says no", 404

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/not-ours").get_data(as_text=True) == "host says no"
    assert client.get("/threads/x").get_data(as_text=True) == "Not found: GET /threads/x"


def test_openapi_errors_are_json() -> None:
    client = make_app(COMMON_API_TOKEN="t").test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}


def test_openapi_document_lists_every_endpoint(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/env", "/loglevel", "/metrics", "/metrics/reset", "/threads", "/periodic-threads",
        "/periodic-threads/{thread_name}", "/periodic-threads-health", "/run_script",
        "/openapi.json", "/ui", "/profile", "/memory"}
    prefixed = Flask("p")
    prefixed.register_blueprint(bp, url_prefix="/ops")
    servers = prefixed.test_client().get("/ops/openapi.json").get_json()["servers"]
    assert servers == [{"url": "/ops"}]
