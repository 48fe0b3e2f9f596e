"""/run_script is served only when COMMON_API_SCRIPT_ENABLED is true (issue 19).

Off (the default), its path answers 404 in plain text naming the key, /openapi.json leaves
it out and the page hides its panel; on, from the app config or the environment, it runs
scripts as before.
"""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common_api import bp

SCRIPT = b"result = 6 * 7\n"
KEY = "COMMON_API_SCRIPT_ENABLED"


def make_app(**settings: object) -> Flask:
    app = Flask("opt_in")
    app.config.update(settings)
    app.register_blueprint(bp)
    return app


def post_script(client: FlaskClient, path: str = "/run_script") -> tuple[int, str, str]:
    response = client.post(path, data={"script": (io.BytesIO(SCRIPT), "s.py")},
                           content_type="multipart/form-data")
    return response.status_code, response.content_type, response.get_data(as_text=True)


def test_off_by_default_answers_404_naming_the_key_and_what_it_means() -> None:
    status, content_type, text = post_script(make_app().test_client())
    assert (status, content_type) == (404, "text/plain; charset=utf-8")
    assert "POST /run_script is disabled on this component" in text
    assert f"{KEY}=true" in text
    assert "runs Python code sent by the caller inside the component" in text


def test_off_under_a_prefix_and_for_any_method() -> None:
    app = Flask("prefixed_opt_in")
    app.register_blueprint(bp, url_prefix="/ops")
    client = app.test_client()
    status, _, text = post_script(client, "/ops/run_script")
    assert status == 404 and "disabled on this component" in text
    answer = client.get("/ops/run_script")
    assert answer.status_code == 404 and KEY in answer.get_data(as_text=True)


def test_off_it_is_not_in_the_openapi_document_and_the_page_hides_its_panel() -> None:
    client = make_app().test_client()
    assert "/run_script" not in client.get("/openapi.json").get_json()["paths"]
    page = client.get("/ui").get_data(as_text=True)
    assert '<section id="script" aria-labelledby="h-script" hidden>' in page
    assert '<a href="#script" hidden>' in page


def test_on_from_the_app_config() -> None:
    client = make_app(COMMON_API_SCRIPT_ENABLED=True).test_client()
    assert post_script(client)[::2] == (200, "42")
    assert "/run_script" in client.get("/openapi.json").get_json()["paths"]
    page = client.get("/ui").get_data(as_text=True)
    assert '<section id="script" aria-labelledby="h-script">' in page
    assert '<a href="#script">' in page


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "TRUE"])
def test_on_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KEY, value)
    assert post_script(make_app().test_client())[::2] == (200, "42")


def test_the_app_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY, "true")
    assert post_script(make_app(COMMON_API_SCRIPT_ENABLED="false").test_client())[0] == 404


def test_a_value_that_is_not_true_or_false_stops_registration() -> None:
    with pytest.raises(Exception, match=KEY):
        make_app(COMMON_API_SCRIPT_ENABLED="maybe")


def test_disabled_endpoints_still_remove_it_entirely() -> None:
    client = make_app(COMMON_API_SCRIPT_ENABLED=True,
                      COMMON_API_DISABLED_ENDPOINTS="run_script").test_client()
    status, _, text = post_script(client)
    assert status == 404 and KEY not in text
