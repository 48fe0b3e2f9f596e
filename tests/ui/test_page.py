"""GET /ui as the server sends it: one self-contained HTML document, small, loading
nothing from anywhere, served under the prefix, and holding no data of its own."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys

from flask import Flask
from flask.testing import FlaskClient

from common_api import bp

MAX_PAGE_BYTES = 100 * 1024


def test_the_page_is_one_html_document_of_at_most_100_kb(client: FlaskClient) -> None:
    response = client.get("/ui")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert len(response.data) <= MAX_PAGE_BYTES
    page = response.get_data(as_text=True)
    assert page.startswith("<!doctype html>") and "</script>" in page and "</style>" in page
    assert "__COMPONENT__" not in page and "__VERSION__" not in page


def test_the_page_references_nothing_outside_itself(client: FlaskClient) -> None:
    page = client.get("/ui").get_data(as_text=True)
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#|data:)""", page)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "@import" not in page and "//cdn" not in page
    # and the browser is told so: it may connect to this origin only, load nothing else
    policy = client.get("/ui").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


def test_the_policy_allows_exactly_the_page_s_own_style_and_script(
        client: FlaskClient) -> None:
    response = client.get("/ui")
    page = response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for tag in ("script", "style"):
        (content,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy


def test_the_page_names_the_component_escaped() -> None:
    app = Flask("<b>evil</b>")
    app.register_blueprint(bp)
    page = app.test_client().get("/ui").get_data(as_text=True)
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page


def test_the_page_is_served_under_the_prefix_and_calls_relative_paths() -> None:
    app = Flask("prefixed")
    app.register_blueprint(bp, url_prefix="/ops")
    client = app.test_client()
    assert client.get("/ops/ui").status_code == 200
    assert client.get("/ui").status_code == 404
    page = client.get("/ops/ui").get_data(as_text=True)
    assert not re.search(r"""(?:getJson|call)\(\s*["'`]/""", page)  # no absolute API paths


def test_with_a_token_the_page_loads_without_it_but_the_data_does_not() -> None:
    app = Flask("guarded")
    app.config["COMMON_API_TOKEN"] = "s3cret"
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/ui").status_code == 200
    assert client.get("/periodic-threads").status_code == 401
    assert client.get("/ui", headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_the_page_is_listed_in_openapi_as_html(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert list(paths["/ui"]["get"]["responses"]["200"]["content"]) == ["text/html"]


def test_the_page_can_be_disabled() -> None:
    disabled = Flask("no_ui")
    disabled.config["COMMON_API_DISABLED_ENDPOINTS"] = "ui"
    disabled.register_blueprint(bp)
    client = disabled.test_client()
    assert client.get("/ui").status_code == 404
    assert "/ui" not in client.get("/openapi.json").get_json()["paths"]


def test_importing_the_package_does_not_read_the_page() -> None:
    code = ("import sys, common_api, common_api.blueprint; "
            "print('common_api.ui' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
