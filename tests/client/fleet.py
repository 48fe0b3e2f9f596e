"""The servers of the client tests: how they are started and when they are ready."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests
from support import LiveServer, launch_server

HERE = Path(__file__).resolve().parent
TOKEN = "s3cret-token-for-tests"


@dataclass(frozen=True)
class Fleet:
    healthy: LiveServer
    unhealthy: LiveServer
    protected: LiveServer
    stopped: str
    token: str = TOKEN


def launch(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> LiveServer:
    return launch_server(log_dir, *args, env=env)


def answers(server: LiveServer, path: str, status: int) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"server exited early:\n{server.log()}")
    try:
        return requests.get(server.url + path, timeout=2).status_code == status
    except requests.ConnectionError:
        return False


def doomed_everywhere(server: LiveServer) -> bool:
    """Both workers report their stopped critical thread."""
    if not answers(server, "/periodic-threads-health", 503):
        return False
    body = server.get("/periodic-threads-health").json()
    return len({entry.get("pid") for entry in body["unhealthy_threads"]}) == 2
