"""The /run_script view: upload handling and the seed's bodies (the sandbox has its own tests)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from flask import Flask
from flask.testing import FlaskClient

TEXT = "text/plain; charset=utf-8"


@dataclass
class Metadata:
    kv_shape: tuple[int, ...] = (27, 1, 64, 1, 576)

    def is_first_rank(self) -> bool:
        return True


@dataclass
class Engine:
    metadata: Metadata = field(default_factory=Metadata)


@dataclass
class Adapter:
    lmcache_engine: Engine = field(default_factory=Engine)


@pytest.fixture(autouse=True)
def host_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classes above are host code: this module's package is a host package; and the
    apps of this module serve /run_script (off by default)."""
    monkeypatch.setenv("COMMON_API_SCRIPT_HOST_PACKAGES", __name__.split(".")[0])
    monkeypatch.setenv("COMMON_API_SCRIPT_ENABLED", "true")


SEED_SCRIPT = b"""lmcache_engine = app.state.lmcache_adapter.lmcache_engine

result = {
    "is_first_rank": lmcache_engine.metadata.is_first_rank(),
    "model_version": lmcache_engine.metadata.kv_shape,
}
"""


def post_script(client: FlaskClient, source: bytes, name: str = "scratch.py"):  # type: ignore[no-untyped-def]
    return client.post("/run_script", data={"script": (io.BytesIO(source), name)},
                       content_type="multipart/form-data")


def test_seed_example_runs_against_live_objects(app: Flask, client: FlaskClient) -> None:
    app.state.lmcache_adapter = Adapter()  # type: ignore[attr-defined]
    response = post_script(client, SEED_SCRIPT)
    assert response.status_code == 200
    assert response.content_type == TEXT
    assert response.get_data(as_text=True) == (
        "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")


def test_without_result_says_executed_successfully(client: FlaskClient) -> None:
    response = post_script(client, b"x = 1 + 1\n")
    assert (response.status_code, response.get_data(as_text=True)) == (
        200, "Script executed successfully")


def test_disallowed_import_is_500_with_seed_text(client: FlaskClient) -> None:
    response = post_script(client, b"import os\nresult = os.getcwd()\n")
    assert response.status_code == 500
    assert response.content_type == TEXT
    assert response.get_data(as_text=True) == (
        "Error executing script: Import of 'os' is not allowed")


def test_failing_script_is_500_without_traceback(client: FlaskClient) -> None:
    response = post_script(client, b"result = 1 / 0\n")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert text.startswith("Error executing script: ")
    assert "ZeroDivisionError" in text
    assert "Traceback" not in text


def test_no_file_is_400_with_seed_text(client: FlaskClient) -> None:
    for response in (client.post("/run_script"),
                     client.post("/run_script", data={"other": (io.BytesIO(b"x"), "x.py")},
                                 content_type="multipart/form-data"),
                     client.post("/run_script", data={"script": "result = 1"})):
        assert response.status_code == 400
        assert response.get_data(as_text=True) == "No script file provided"


def test_non_utf8_script_fails_like_a_syntax_error(client: FlaskClient) -> None:
    response = post_script(client, b"result = '\xff\xfe'\n")
    assert response.status_code == 500
    assert response.get_data(as_text=True) == (
        "Error executing script: Script is not valid UTF-8 (byte 10)")


def test_oversized_upload_is_413(app: Flask) -> None:
    app.config["COMMON_API_SCRIPT_MAX_BYTES"] = 1000
    fresh = Flask("small_uploads")
    fresh.config["COMMON_API_SCRIPT_MAX_BYTES"] = 1000
    from common_api import bp

    fresh.register_blueprint(bp)
    client = fresh.test_client()
    just_over = post_script(client, b"#" * 1001)
    assert just_over.status_code == 413
    assert "1000 bytes" in just_over.get_data(as_text=True)
    huge = post_script(client, b"#" * 200_000)
    assert huge.status_code == 413
    assert huge.content_type == TEXT


def test_run_script_needs_post(client: FlaskClient) -> None:
    assert client.get("/run_script").status_code == 405


def test_a_form_of_too_many_parts_is_413_naming_the_parts_not_the_size(
        client: FlaskClient) -> None:
    import io

    fields: dict[str, object] = {f"f{i}": "x" for i in range(1500)}
    fields["script"] = (io.BytesIO(b"result = 1"), "s.py")
    response = client.post("/run_script", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413 and response.content_type == TEXT
    body = response.get_data(as_text=True)
    assert "form parts" in body and "larger than 1048576 bytes" not in body, body
