"""The peer channel on its own: one process listens, this test and its children ask.

The listener runs in this test process; a request made from this process is "authorized"
or not by the ``authorize`` each test passes, and a request from a child process comes
with that child's pid (SO_PEERCRED), so the refusals are the kernel's word, not a flag.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common_api.peer_channel import (
    ChannelAddress,
    Claims,
    PeerCredentials,
    PeerServer,
    ask,
    ask_all,
)
from common_api.peer_channel.wire import encode

TIMEOUT = 1.0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def serve() -> Iterator[Callable[..., PeerServer]]:
    started: list[PeerServer] = []

    def start(handlers: dict[str, Callable[[Any], Any]],
              authorize: Callable[[PeerCredentials], bool] = lambda _: True,
              pid: int | None = None, **options: Any) -> PeerServer:
        address = ChannelAddress(uuid.uuid4().hex[:12], os.getpid() if pid is None else pid)
        server = PeerServer(address, handlers, authorize, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _raw_exchange(server: PeerServer, data: bytes, hold: float = 0.0) -> bytes:
    """Send ``data`` as a hostile client would, then read whatever comes back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(server.address.sockaddr())
        if data:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return b""  # refused before it was all sent: nothing came back
        if hold:
            time.sleep(hold)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def test_an_authorized_caller_gets_the_handler_answer(serve: Callable[..., PeerServer]
                                                      ) -> None:
    server = serve({"echo": lambda body: {"got": body, "pid": os.getpid()}})
    assert ask(server.address, "echo", [1, "two"], TIMEOUT) == {"got": [1, "two"],
                                                                 "pid": os.getpid()}


def test_a_process_that_is_not_authorized_gets_nothing_and_changes_nothing(
        serve: Callable[..., PeerServer]) -> None:
    calls: list[Any] = []
    server = serve({"set": calls.append}, authorize=lambda who: who.pid == os.getpid())
    client = (
        "import socket,struct,json,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.settimeout(5)\n"
        "s.connect(sys.argv[1].replace('@', chr(0), 1))\n"
        "data=json.dumps({'kind':'set','body':'evil'}).encode()\n"
        "got=b''\n"
        "try:\n"
        "    s.sendall(struct.pack('>I',len(data))+data)\n"
        "    while (c:=s.recv(4096)): got+=c\n"
        "except OSError: pass\n"
        "print(len(got))\n")
    stranger = subprocess.run([sys.executable, "-c", client, str(server.address)],
                              capture_output=True, text=True, timeout=30)
    assert stranger.returncode == 0, stranger.stderr
    assert stranger.stdout.strip() == "0"
    assert calls == [] and server.refused == 1
    assert ask(server.address, "set", "fine", TIMEOUT) is None  # this process may
    assert calls == ["fine"]


def test_hostile_requests_get_no_data_and_neither_stall_nor_leak(
        serve: Callable[..., PeerServer]) -> None:
    calls: list[Any] = []
    server = serve({"set": calls.append}, request_seconds=0.5)
    nested = b"[" * 200_000 + b"]" * 200_000
    hostile = {
        "nothing": (b"", 0.8),
        "garbage": (b"\xff\xfe garbage \x00" * 50, 0.0),
        "1 MiB": (b"\x00\x10\x00\x00" + b"x" * (1 << 20), 0.0),
        "cut short": (b"\x00\x00\x01\x00{\"kind\"", 0.8),
        "nested": (encode(None)[:0] + len(nested).to_bytes(4, "big") + nested, 0.0),
        "nested small": (encode(json.loads("[" * 100 + "]" * 100)), 0.0),
        "not an object": (encode([1, 2, 3]), 0.0),
        "unknown kind": (encode({"kind": "drop_tables", "body": {}}), 0.0),
        "kind not text": (encode({"kind": {"a": 1}, "body": {}}), 0.0),
    }
    before = _fds()
    answers: dict[str, bytes] = {}
    latencies: list[float] = []

    def attack(name: str, data: bytes, hold: float) -> None:
        answers[name] = _raw_exchange(server, data, hold)

    attackers = [threading.Thread(target=attack, args=(name, *spec))
                 for name, spec in hostile.items()]
    for thread in attackers:
        thread.start()
    for _ in range(5):  # a worker's own request is answered meanwhile, promptly
        started = time.monotonic()
        assert ask(server.address, "set", "ok", TIMEOUT) is None
        latencies.append(time.monotonic() - started)
    for thread in attackers:
        thread.join(30)
    assert calls == ["ok"] * 5, calls
    for name, answer in answers.items():
        assert b"drop_tables" not in answer
        assert answer == b"" or json.loads(answer[4:])["ok"] is False, (name, answer[:200])
    assert max(latencies) < 0.5, latencies

    def settled() -> bool:
        return _fds() <= before

    deadline = time.monotonic() + 5
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fds() <= before, "file descriptors leaked"
    assert ask(server.address, "set", "after", TIMEOUT) is None


def test_ask_all_answers_within_its_deadline_and_names_the_late_one(
        serve: Callable[..., PeerServer]) -> None:
    release = threading.Event()
    fast = serve({"q": lambda body: "fast"})
    slow = serve({"q": lambda body: release.wait(10) and "slow"}, pid=os.getpid())
    gone = ChannelAddress(uuid.uuid4().hex[:12], 1)
    targets = {1: fast.address, 2: slow.address, 3: gone}
    started = time.monotonic()
    try:
        replies = ask_all(targets, "q", None, 0.5)
    finally:
        release.set()
    elapsed = time.monotonic() - started
    assert replies.answers == {1: "fast"}
    assert replies.missing[2] == "no answer within 0.5 s"
    assert "not listening" in replies.missing[3]
    assert elapsed < 1.0, elapsed


def test_an_answer_from_another_pid_than_the_one_asked_is_refused(
        serve: Callable[..., PeerServer]) -> None:
    squatter = serve({"q": lambda body: "fake"}, pid=os.getppid())  # bound by this process
    with pytest.raises(ConnectionError, match="held by another process"):
        ask(squatter.address, "q", None, TIMEOUT)


def test_a_failing_handler_is_an_error_answer_naming_it(
        serve: Callable[..., PeerServer]) -> None:
    def fail(body: Any) -> Any:
        raise KeyError("cache")

    server = serve({"q": fail})
    replies = ask_all({7: server.address}, "q", None, TIMEOUT)
    assert replies.missing == {7: "could not answer: KeyError: 'cache'"}


def test_without_abstract_names_the_socket_is_a_file_in_a_private_directory(
        serve: Callable[..., PeerServer], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any) -> None:
    monkeypatch.setattr("common_api.peer_channel.address.ABSTRACT", False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    server = serve({"echo": lambda body: body})
    path = server.address.sockaddr()
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    assert os.stat(os.path.dirname(os.path.dirname(path))).st_mode & 0o077 == 0
    assert ask(server.address, "echo", "via a file", TIMEOUT) == "via a file"
    server.close()
    assert not os.path.exists(path)


def test_a_claim_is_held_by_the_first_process_only() -> None:
    identity = uuid.uuid4().hex[:12]
    mine = Claims(lambda: identity, hold=0.2)
    assert mine.claim("missing-7-1")
    script = ("import sys\nfrom common_api.peer_channel import Claims\n"
              "print(Claims(lambda: sys.argv[1]).claim(sys.argv[2]))\n")
    other = subprocess.run([sys.executable, "-c", script, identity, "missing-7-1"],
                           capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "False", other.stderr
    assert mine.claim("missing-8-1")  # another name is free
    time.sleep(0.3)  # the hold is a duration: let it pass
    mine.claim("anything")  # expires what is due
    again = subprocess.run([sys.executable, "-c", script, identity, "missing-7-1"],
                           capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "True", again.stderr


def test_an_inline_kind_is_answered_on_the_listening_thread_the_others_on_their_own(
        serve: Callable[..., PeerServer]) -> None:
    def thread_name(body: Any) -> str:
        return threading.current_thread().name

    server = serve({"quick": thread_name, "slow": thread_name}, inline=("quick",))
    # a quick request is answered inline when it has arrived whole by the time it is
    # accepted, as a worker's nearly always has; on a loaded machine it may come a moment
    # later and take the thread path: of ten, at least one is inline
    quick = [ask(server.address, "quick", None, TIMEOUT) for _ in range(10)]
    assert "common-api-peer-channel" in quick
    assert set(quick) <= {"common-api-peer-channel", "common-api-peer-request"}
    assert ask(server.address, "slow", None, TIMEOUT) == "common-api-peer-request"


def test_a_held_name_is_refused_to_others_and_free_when_released() -> None:
    claims = Claims(lambda: f"test-hold-{os.getpid()}")
    with claims.hold("profile"):
        with pytest.raises(BlockingIOError), claims.hold("profile"):
            pass
        with claims.hold("memory"):  # another name is another turn
            pass
    with claims.hold("profile"):
        pass
