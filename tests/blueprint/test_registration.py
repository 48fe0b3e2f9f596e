from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask
from prometheus_client import Counter

from common_api import bp
from common_api.extension import get_state


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
