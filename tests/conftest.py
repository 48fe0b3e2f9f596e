"""Shared fixtures: a fresh app per test, and real servers started on free ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import LiveServer, launch_server, running_server, wait_ready

from common_api import bp

ISOLATED_PREFIXES = ("COMMON_API_",)
ISOLATED_NAMES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def _strip_settings(patch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) or name in ISOLATED_NAMES:
            patch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def isolated_session_environment() -> Iterator[None]:
    """No COMMON_API_* or prometheus multiprocess setting from the shell reaches the tests
    or the servers they start (session first, so module-scoped servers are covered too)."""
    with pytest.MonkeyPatch.context() as patch:
        _strip_settings(patch)
        yield


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """...and none that an earlier test set in this process leaks into the next."""
    _strip_settings(monkeypatch)


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
