"""No HTML, ever: an unhandled error under the blueprint's paths answers 500 with one line
in the endpoint's own format, and its traceback is logged once. Host routes keep the host's
own error handling.

The app runs as in production (``TESTING`` off, so Flask does not re-raise into the test).
"""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import BadRequest

from common_api import bp
from common_api.extension import get_state


class Boom(RuntimeError):
    pass


def explode(*_: object, **__: object) -> None:
    raise Boom("secret-ish detail that stays in the log")


@pytest.fixture
def app() -> Flask:
    app = Flask("errors_app")
    app.register_blueprint(bp)

    @app.get("/host-boom")
    def host_boom() -> str:
        raise Boom("host")

    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info is not None]


def assert_one_line_500(body: str) -> None:
    assert "<" not in body and "\n" not in body.strip()
    assert "Boom" in body and "secret-ish" not in body


def test_a_text_view_that_raises_answers_one_plain_line_and_logs_once(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_state(app).threads, "dump", explode)
    response = client.get("/threads")
    assert response.status_code == 500
    assert response.mimetype == "text/plain"
    assert_one_line_500(response.get_data(as_text=True))
    assert response.headers["Cache-Control"] == "no-store"
    assert len(tracebacks(caplog)) == 1


def test_a_json_view_that_raises_answers_a_json_error(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_state(app).periodic, "health", explode)
    response = client.get("/periodic-threads-health")
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert_one_line_500(body["error"])
    assert len(tracebacks(caplog)) == 1


def test_json_asked_of_a_text_endpoint_gets_a_json_error(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_state(app).loglevels, "list_levels", explode)
    response = client.get("/loglevel?format=json")
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert_one_line_500(response.get_json()["error"])


def test_a_before_request_hook_that_raises_answers_in_the_endpoint_format(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_state(app).access, "check", explode)
    response = client.get("/env")
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert_one_line_500(response.get_json()["error"])
    assert len(tracebacks(caplog)) == 1


def test_an_after_request_hook_that_raises_answers_plain_text_and_logs_once(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_state(app).audit, "record", explode)
    response = client.post("/metrics/reset")
    assert response.status_code == 500
    assert response.mimetype == "text/plain"
    assert_one_line_500(response.get_data(as_text=True))
    assert response.headers["Cache-Control"] == "no-store"
    assert len(tracebacks(caplog)) == 1


def test_an_http_error_raised_in_a_view_keeps_its_status_without_html(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(*_: object, **__: object) -> None:
        raise BadRequest("The browser (or proxy) sent a request that this server could not "
                         "understand.")

    monkeypatch.setattr(get_state(app).metrics, "reset", bad)
    response = client.post("/metrics/reset")
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("Bad Request: ")
    monkeypatch.setattr(get_state(app).environment, "snapshot", bad)
    response = client.get("/env")
    assert response.status_code == 400 and response.get_json()["error"].startswith("Bad Request")


def test_host_routes_keep_the_hosts_own_error_handling(client: FlaskClient) -> None:
    response = client.get("/host-boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"  # Flask's own page: the host did not ask otherwise


def test_a_host_500_handler_still_handles_host_routes_only(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    app.register_error_handler(500, lambda error: ("host says no", 500))
    client = app.test_client()
    assert client.get("/host-boom").get_data(as_text=True) == "host says no"
    monkeypatch.setattr(get_state(app).threads, "dump", explode)
    assert_one_line_500(client.get("/threads").get_data(as_text=True))


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/metrics/x", 404), ("POST", "/run_script", 404), ("DELETE", "/env", 405)])
def test_a_404_or_405_under_the_blueprint_s_paths_carries_the_common_headers(
        client: FlaskClient, method: str, path: str, status: int) -> None:
    import os

    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["X-Worker-Pid"] == str(os.getpid())
    assert response.headers["X-Common-Api-Version"]
    assert response.headers["Cache-Control"] == "no-store"
