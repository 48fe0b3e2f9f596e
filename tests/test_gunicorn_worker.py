"""The config's gunicorn worker (common_api.gunicorn_worker) on a real ``common-api serve``
with its defaults: request heads are read in the event loop, so slow clients hold no
thread and health keeps answering; keepalive and pipelining still work; a head that does
not complete in time gets a plain-text 408; gunicorn's own errors are plain text."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gunicorn
import pytest
import requests
from support import LiveServer, running_server, wait_until

from common_api.compat.gunicorn import SLOW_CLIENTS

pytestmark = pytest.mark.server
# the head reading is used on gunicorn 27+ only; before, the preset keeps gunicorn's own
slow_client_worker = pytest.mark.skipif(not SLOW_CLIENTS, reason="needs gunicorn 27+")
# gunicorn's own gthread before 27 answers the first of pipelined requests only (README)
pipelining = pytest.mark.skipif(gunicorn.version_info < (27,),
                                reason="gthread answers pipelined requests from gunicorn 27")

APPS = Path(__file__).resolve().parent / "apps"
SLOW_CLIENTS = 12
PROBES = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("worker"),
                        ready_path="/periodic-threads-health") as live:
        yield live


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def read_responses(sock: socket.socket, count: int, timeout: float = 20.0) -> list[bytes]:
    """``count`` whole responses (each with a Content-Length) read from ``sock``."""
    sock.settimeout(timeout)
    data = b""
    responses = []
    while len(responses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1")
            length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                          if line.lower().startswith("content-length:"))
            end = head_end + 4 + length
            if len(data) >= end:
                responses.append(data[:end])
                data = data[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses


def request(path: str, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n".encode()


def test_keepalive_serves_several_requests_on_one_connection(server: LiveServer) -> None:
    with socket.create_connection(address(server)) as sock:
        for _ in range(3):
            sock.sendall(request("/periodic-threads-health"))
            [response] = read_responses(sock, 1)
            assert response.startswith(b"HTTP/1.1 200 ")


@pipelining
def test_pipelined_requests_are_all_answered_in_order(server: LiveServer) -> None:
    with socket.create_connection(address(server)) as sock:
        sock.sendall(request("/loglevel?logger_name=demo.stats") + request("/") +
                     request("/loglevel?logger_name=demo.cache", close=True))
        responses = read_responses(sock, 3)
    assert len(responses) == 3
    assert b"demo.stats: " in responses[0]
    assert b'"component"' in responses[1]
    assert b"demo.cache: " in responses[2]


@slow_client_worker
def test_a_pipelined_head_that_arrives_in_pieces_is_answered(server: LiveServer) -> None:
    second = request("/loglevel?logger_name=demo.cache", close=True)
    with socket.create_connection(address(server)) as sock:
        sock.sendall(request("/") + second[:10])
        time.sleep(0.3)
        sock.sendall(second[10:25])
        time.sleep(0.3)
        sock.sendall(second[25:])
        responses = read_responses(sock, 2)
    assert len(responses) == 2 and b"demo.cache: " in responses[1]


@slow_client_worker
def test_a_head_sent_slowly_is_served_normally(server: LiveServer) -> None:
    head = request("/loglevel?logger_name=demo.stats", close=True)
    with socket.create_connection(address(server)) as sock:
        for start in range(0, len(head), 7):
            sock.sendall(head[start:start + 7])
            time.sleep(0.05)
        [response] = read_responses(sock, 1)
    assert response.startswith(b"HTTP/1.1 200 ") and b"demo.stats: " in response


def test_gunicorns_own_errors_are_plain_text(server: LiveServer) -> None:
    with socket.create_connection(address(server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nBad Header Line\r\n\r\n")
        sock.settimeout(20)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: text/plain" in answer and b"<html" not in answer.lower()


@pytest.fixture(scope="module")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    with running_server(tmp_path_factory.mktemp("probe"), "--app", "write_error_probe:app",
                        "--workers", "1", env={"PYTHONPATH": path}) as live:
        yield live


def test_plain_errors_replace_no_gunicorn_function_in_the_worker(probe_server: LiveServer
                                                                 ) -> None:
    """The worker's errors are plain text, while gunicorn.util.write_error stays gunicorn's
    own in the worker process (issue 19: nothing replaced for the whole process)."""
    with socket.create_connection(address(probe_server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nBad Header Line\r\n\r\n")
        sock.settimeout(20)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Type: text/plain" in answer and b"<html" not in answer.lower()
    assert answer.split(b"\r\n\r\n", 1)[1].startswith(b"Bad Request: ")
    owner = probe_server.get("/write-error-owner")
    assert (owner.status_code, owner.text) == (200, "gunicorn.util.write_error")


@slow_client_worker
def test_slow_clients_do_not_silence_health(server: LiveServer) -> None:
    stop = threading.Event()
    opened = []

    def slow_client() -> None:
        head = b"GET /periodic-threads-health HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"p" * 64
        with socket.create_connection(address(server)) as sock:
            opened.append(sock)
            for byte in head:
                if stop.wait(0.5):
                    return
                sock.sendall(bytes([byte]))

    clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: len(opened) == SLOW_CLIENTS, 10, message="slow clients connected")
        time.sleep(1.5)  # every slow client has sent bytes: a gthread pool thread is tied up
        failures = []
        for _ in range(PROBES):
            try:
                response = requests.get(server.url + "/periodic-threads-health", timeout=5,
                                        headers={"Connection": "close"})
                assert response.status_code == 200
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            time.sleep(0.5)
        assert failures == [], f"{len(failures)} of {PROBES} health probes got no answer"
    finally:
        stop.set()
        for client in clients:
            client.join(10)


@pytest.fixture
def short_deadline_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    return start_server(env={"PYTHONPATH": path,
                             "GUNICORN_CMD_ARGS": "--worker-class short_head_worker.Worker"},
                        ready_path="/periodic-threads-health")


@slow_client_worker
def test_an_incomplete_head_gets_a_plain_408_after_the_deadline(
        short_deadline_server: LiveServer) -> None:
    with socket.create_connection(address(short_deadline_server)) as sock:
        sock.sendall(b"GET /periodic-threads-health HTTP/1.1\r\nHost: te")
        started = time.monotonic()
        sock.settimeout(20)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Content-Type: text/plain" in answer
    assert answer.endswith(b"Request Timeout: request head not complete within 2 s")
    assert 1.5 < time.monotonic() - started < 10
