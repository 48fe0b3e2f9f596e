"""Servers for the client tests, started once for the whole ``tests/client`` run.

``fleet`` is three real ``common-api serve`` servers started side by side (a healthy
demo, an unhealthy app, a token-protected demo) and the URL of a port where nothing
listens. ``stub`` is an in-process HTTP server that records every request, for checking
exactly what the client sends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from client.fleet import HERE, TOKEN, Fleet, answers, doomed_everywhere, launch
from client.stub import StubServer
from support import LiveServer, free_port, wait_until


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    log_dir = tmp_path_factory.mktemp("fleet")
    servers: list[LiveServer] = []
    try:
        servers.append(launch(log_dir))
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        servers.append(launch(log_dir, "--app", "unhealthy_app:app", env={"PYTHONPATH": path}))
        servers.append(launch(log_dir, "--workers", "1", env={"COMMON_API_TOKEN": TOKEN}))
        healthy, unhealthy, protected = servers
        wait_until(lambda: answers(healthy, "/periodic-threads-health", 200), 30,
                   interval=0.1, message="healthy server")
        wait_until(lambda: doomed_everywhere(unhealthy), 30, interval=0.1,
                   message="unhealthy server")
        wait_until(lambda: answers(protected, "/periodic-threads-health", 401), 30,
                   interval=0.1, message="token-protected server")
        yield Fleet(healthy, unhealthy, protected, f"http://127.0.0.1:{free_port()}")
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    try:
        yield server
    finally:
        server.close()
