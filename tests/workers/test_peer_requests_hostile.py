"""The worker-to-worker requests (thread dumps, level sets, profile and memory windows) are
attack surface: a process that is not one of the server's workers finds a worker's peer
channel socket (the way anyone can, from /proc/net/unix) and sends each new request kind
nothing, garbage, 1 MiB, deeply nested JSON and plausible requests. It gets no data,
changes nothing, and the worker neither crashes, stalls nor leaks a descriptor.

One real gunicorn server (3 workers of tests/apps/multi_app.py) for the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import LiveServer, running_server, wait_until

pytestmark = pytest.mark.server

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKERS = 3
LOGGER = "multi.app"
KINDS = ("threads", "levels", "window")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    with running_server(tmp_path_factory.mktemp("hostile"), "--app", "multi_app:app",
                        "--workers", str(WORKERS), env={"PYTHONPATH": path}) as live:
        yield live


def fresh_get(server: LiveServer, path: str, **params: str) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=30,
                        headers={"Connection": "close"})


def socket_names() -> dict[int, str]:
    """Every worker channel socket on the machine, by pid, as a stranger finds them."""
    names = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        path = fields[-1] if len(fields) > 7 else ""
        last = path.rsplit("/", 1)[-1]
        if path.startswith("@common_api-peer/") and "/claim/" not in path and last.isdigit():
            names[int(last)] = path
    return names


def workers_of(server: LiveServer) -> set[int]:
    def three() -> set[int] | None:
        body = fresh_get(server, "/threads", scope="all", format="json").json()
        pids = {entry["pid"] for entry in body["workers"]}
        return pids if len(pids) == WORKERS else None

    found = wait_until(three, 30, interval=0.2, message="every worker listed")
    assert isinstance(found, set)
    return found


def frame(payload: object) -> bytes:
    data = json.dumps(payload).encode()
    return len(data).to_bytes(4, "big") + data


def attacks(kind: str) -> dict[str, bytes]:
    nested = b"[" * 100_000 + b"]" * 100_000
    plausible: dict[str, object] = {
        "threads": None,
        "levels": {"generation": 2**62, "levels": {LOGGER: "DEBUG", "": "DEBUG"},
                   "reverts": {}},
        "window": {"kind": "profile", "params": {"hz": 1000, "name": None,
                                                 "drop_idle": False},
                   "start": time.time(), "end": time.time() + 3000},
    }
    return {
        "nothing": b"",
        "garbage": b"\xff\xfe garbage \x00" * 50,
        "1 MiB": (1 << 20).to_bytes(4, "big") + b"x" * (1 << 20),
        "deep JSON": len(nested).to_bytes(4, "big") + nested,
        "deep body": frame({"kind": kind, "body": json.loads("[" * 900 + "]" * 900)}),
        "plausible": frame({"kind": kind, "body": plausible[kind]}),
    }


def exchange(name: str, data: bytes) -> bytes:
    """Send ``data`` to the socket ``name`` as a stranger; whatever comes back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(name.replace("@", "\0", 1))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        got = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                got += chunk
        return got


def level_in(server: LiveServer, pid: int) -> str:
    """``LOGGER``'s effective level as worker ``pid`` reports it."""
    def from_pid() -> str | None:
        response = fresh_get(server, "/loglevel", logger_name=LOGGER, format="json")
        if int(response.headers["X-Worker-Pid"]) != pid:
            return None
        return str(response.json()["effective_level"])

    level = wait_until(from_pid, 30, interval=0.01, message=f"an answer from worker {pid}")
    assert isinstance(level, str)
    return level


@pytest.mark.parametrize("kind", KINDS)
def test_a_stranger_sending_a_worker_request_kind_gets_nothing_and_harms_nothing(
        server: LiveServer, kind: str) -> None:
    pids = workers_of(server)
    names = socket_names()
    target = min(pids)
    assert target in names, names
    assert fresh_get(server, "/loglevel", logger_name=LOGGER, level="WARNING").ok
    fds_before = len(os.listdir(f"/proc/{target}/fd"))
    answers: dict[str, bytes] = {}

    def attack(label: str, data: bytes) -> None:
        answers[label] = exchange(names[target], data)

    attackers = [threading.Thread(target=attack, args=item)
                 for item in attacks(kind).items()]
    for thread in attackers:
        thread.start()
    # meanwhile every worker still answers its siblings, promptly, with its stacks
    started = time.monotonic()
    body = fresh_get(server, "/threads", scope="all", format="json").json()
    assert time.monotonic() - started < 2.0
    assert {entry["pid"]: entry["source"] for entry in body["workers"]} == \
        dict.fromkeys(pids, "python")
    for thread in attackers:
        thread.join(30)
    assert answers == dict.fromkeys(attacks(kind), b""), \
        {label: got[:100] for label, got in answers.items() if got}
    # nothing changed: the level stays, no window runs, no worker died
    assert level_in(server, target) == "WARNING"
    assert workers_of(server) == pids
    profile = fresh_get(server, "/profile", seconds="0.2", scope="all")
    assert profile.status_code == 200, profile.text  # no window was left running (429)
    wait_until(lambda: len(os.listdir(f"/proc/{target}/fd")) <= fds_before, 10,
               message="the worker's file descriptors back to where they were")


STRANGER = """
import socket, sys
data = bytes.fromhex(sys.argv[2])
got = b""
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.settimeout(5)
    sock.connect(sys.argv[1].replace("@", chr(0), 1))
    try:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            got += chunk
    except OSError:
        pass
print(len(got))
"""


def test_another_user_sending_a_plausible_level_set_gets_nothing_and_changes_nothing(
        server: LiveServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    pids = workers_of(server)
    target = min(pids)
    name = socket_names()[target]
    assert fresh_get(server, "/loglevel", logger_name=LOGGER, level="WARNING").ok
    request = attacks("levels")["plausible"]
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    stranger = subprocess.run([python, "-c", STRANGER, name, request.hex()],
                              capture_output=True, text=True, timeout=30, user=65534,
                              group=65534, cwd="/")
    assert stranger.returncode == 0, stranger.stderr
    assert stranger.stdout.strip() == "0"
    assert level_in(server, target) == "WARNING"
