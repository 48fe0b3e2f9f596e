"""/profile and /memory through the app: formats, headers, errors and one at a time."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import wait_until

from common_api import bp
from common_api.services.sampling import SAMPLER_THREAD_NAME


@pytest.mark.parametrize(("query", "headers", "content_type"), [
    ("", {}, "text/plain; charset=utf-8"),
    ("&format=collapsed", {"Accept": "application/json"}, "text/plain; charset=utf-8"),
    ("", {"Accept": "application/json"}, "application/json"),
    ("&format=json", {}, "application/json"),
    ("&format=speedscope", {}, "application/json"),
    ("", {"Accept": "image/svg+xml"}, "image/svg+xml; charset=utf-8"),
    ("&format=svg", {}, "image/svg+xml; charset=utf-8"),
])
def test_the_format_follows_format_then_accept(client: FlaskClient, query: str,
                                               headers: dict[str, str],
                                               content_type: str) -> None:
    response = client.get(f"/profile?seconds=0.2{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type == content_type
    assert int(response.headers["X-Profile-Samples"]) > 0
    assert 0 < float(response.headers["X-Profile-Rate-Hz"]) <= 120
    if "svg" in content_type:
        ET.fromstring(response.data)
    if content_type == "application/json":
        assert "frames" in response.json or "shared" in response.json  # type: ignore[operator]


def test_the_json_form_says_how_many_samples_and_the_rate_achieved(client: FlaskClient) -> None:
    document = client.get("/profile?seconds=0.3&hz=50&format=json").json
    assert document["hz_requested"] == 50
    assert document["samples"] == sum(stack["count"] for stack in document["stacks"])
    assert 0 < document["rate_achieved_hz"] <= 60


@pytest.mark.parametrize(("query", "named", "as_json"), [
    ("/profile?seconds=0", "seconds", False), ("/profile?hz=5000", "hz", False),
    ("/profile?format=png", "format", False), ("/profile?idle=perhaps", "idle", False),
    ("/profile?seconds=x&format=json", "seconds", True),
    ("/memory?top=0", "top", False), ("/memory?group=x&format=json", "group", True),
    ("/memory?format=xml", "format", False),
])
def test_a_bad_parameter_is_400_naming_it(client: FlaskClient, query: str, named: str,
                                          as_json: bool) -> None:
    response = client.get(query)
    assert response.status_code == 400
    message = response.json["error"] if as_json else response.text  # type: ignore[index]
    assert named in message


def test_the_limit_is_the_configured_one_and_the_document_states_it() -> None:
    app = Flask("limited")
    app.config["COMMON_API_PROFILE_MAX_SECONDS"] = 1.5
    app.register_blueprint(bp)
    client = app.test_client()
    response = client.get("/profile?seconds=2")
    assert response.status_code == 400
    assert "1.5 seconds (COMMON_API_PROFILE_MAX_SECONDS)" in response.text
    assert client.get("/memory?seconds=2").status_code == 400
    paths = client.get("/openapi.json").json["paths"]  # type: ignore[index]
    for path in ("/profile", "/memory"):
        (seconds,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "seconds"]
        assert seconds["schema"]["maximum"] == 1.5 and seconds["schema"]["default"] == 1.5


def test_a_bad_limit_stops_registration_naming_the_key() -> None:
    app = Flask("bad")
    app.config["COMMON_API_PROFILE_MAX_SECONDS"] = "-3"
    with pytest.raises(RuntimeError, match="COMMON_API_PROFILE_MAX_SECONDS"):
        app.register_blueprint(bp)


@pytest.fixture
def running_profile(client: FlaskClient) -> Iterator[list[int]]:
    """A 3-second profile in progress in another thread; its status code once it ends."""
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(client.get("/profile?seconds=3").status_code))
    thread.start()
    wait_until(lambda: any(t.name == SAMPLER_THREAD_NAME for t in threading.enumerate()), 10,
               message="the sampler thread")
    yield statuses
    thread.join(30)


def test_a_profile_while_one_runs_is_429_with_the_reason(client: FlaskClient,
                                                          running_profile: list[int]) -> None:
    response = client.get("/profile?seconds=1")
    assert response.status_code == 429
    assert "Another profile is running" in response.text
    assert client.get("/profile?seconds=1&format=json").json == {  # JSON when asked
        "error": "Another profile is running in this server (one at a time); try again when "
                 "it ends"}
    assert client.get("/memory?seconds=0.2").status_code == 200  # another kind of window


def test_memory_reports_growth_in_text_and_json(client: FlaskClient) -> None:
    text = client.get("/memory?seconds=0.2")
    assert text.status_code == 200 and text.content_type.startswith("text/plain")
    assert text.text.startswith("=== Memory growth over")
    document = client.get("/memory?seconds=0.2&top=3&group=traceback",
                          headers={"Accept": "application/json"}).json
    assert document["group"] == "traceback" and document["top"] == 3
    assert document["rss_before"] > 0


def test_disabled_profile_and_memory_are_404_and_undocumented() -> None:
    app = Flask("disabled")
    app.config["COMMON_API_DISABLED_ENDPOINTS"] = "profile,memory"
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/profile?seconds=0.1").status_code == 404
    assert client.get("/memory?seconds=0.1").status_code == 404
    paths = client.get("/openapi.json").json["paths"]  # type: ignore[index]
    assert "/profile" not in paths and "/memory" not in paths


def test_memory_is_for_loopback_or_token_holders_and_profile_is_open(
        client: FlaskClient) -> None:
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    refused = client.get("/memory?seconds=0.1", environ_base=remote)
    assert refused.status_code == 403
    assert client.get("/profile?seconds=0.1", environ_base=remote).status_code == 200
