"""Shared fixtures: a fresh app per test, and real servers started on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from support import LiveServer, free_port, wait_until

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
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        full_env = {**os.environ, **(env or {})}
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "common_api.cli", "serve", "--bind", f"127.0.0.1:{port}",
                 *args],
                stdout=log_file, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
        started.append(server)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.log()}")
            try:
                return requests.get(server.url + ready_path, timeout=2).status_code < 500
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout, interval=0.1, message=f"server on port {port}")
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One demo server for a whole test module (``common-api serve``'s default workers)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "common_api.cli", "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.log()}")
        try:
            return requests.get(server.url + "/metrics", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, 30, interval=0.1, message="live server")
        yield server
    finally:
        server.stop()
