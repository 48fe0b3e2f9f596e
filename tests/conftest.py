"""Shared fixtures: a fresh app per test, and real servers started on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import LiveServer, launch_server, running_server, wait_ready

from common_api import bp


@pytest.fixture
def app() -> Flask:
    app = Flask("test_app")
    app.config["TESTING"] = True
    app.register_blueprint(bp)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start ``common-api serve`` with extra arguments and environment; always stopped."""
    started: list[LiveServer] = []

    def start(*args: str, env: dict[str, str] | None = None, ready_path: str = "/metrics",
              timeout: float = 30.0) -> LiveServer:
        server = launch_server(tmp_path, *args, env=env)
        started.append(server)
        return wait_ready(server, ready_path, timeout=timeout)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One demo server for a whole test module (``common-api serve``'s default workers)."""
    with running_server(tmp_path_factory.mktemp("live")) as server:
        yield server
