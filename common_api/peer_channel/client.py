"""The asking side: one request to many workers at once, within one deadline.

Every target gets its own non-blocking connection; one selector drives them all, so the
call takes as long as the slowest answer or the deadline, whichever comes first, and
never longer. An answer counts only if the kernel says it comes from the pid asked.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common_api.peer_channel import wire
from common_api.peer_channel.address import ChannelAddress
from common_api.peer_channel.server import peer_credentials

MAX_ANSWER_BYTES = 64 * 1024 * 1024


@dataclass
class Replies:
    """What a fan-out got: answers by pid, and each pid that gave none with the cause."""

    answers: dict[int, Any] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)


class _Call:
    def __init__(self, key: int, address: ChannelAddress, request: bytes, limit: int
                 ) -> None:
        self.key = key
        self.address = address
        self.outgoing = memoryview(request)
        self.reader = wire.FrameReader(limit)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setblocking(False)

    def connect(self) -> str | None:
        """None when connected, else why not."""
        code = self.sock.connect_ex(self.address.sockaddr())
        if code == errno.EAGAIN:
            return "its channel is full (busy)"
        if code in (errno.ECONNREFUSED, errno.ENOENT):
            return "not listening on its peer channel"
        if code != 0:
            return f"cannot connect to its peer channel ({os.strerror(code)})"
        credentials = peer_credentials(self.sock)
        if credentials is None:
            return "its peer channel cannot say who answers (no SO_PEERCRED)"
        if credentials.pid != self.address.pid or credentials.uid != os.geteuid():
            return (f"its channel's name is held by another process (pid {credentials.pid}, "
                    f"uid {credentials.uid})")
        return None


class FanOut:
    """One request to many workers, in two halves: the constructor connects and sends
    (without blocking), ``wait`` collects the answers until the deadline set at the
    start. Between the two the caller does its own work while the workers answer."""

    def __init__(self, targets: Mapping[int, ChannelAddress], kind: str, body: Any,
                 timeout: float, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._replies = Replies()
        self._selector = selectors.DefaultSelector()
        self._calls: dict[int, _Call] = {}
        request = wire.request(kind, body)
        try:
            for pid, address in targets.items():
                call = _Call(pid, address, request, max_answer_bytes)
                problem = call.connect()
                if problem is not None:
                    call.sock.close()
                    self._replies.missing[pid] = problem
                    continue
                self._calls[pid] = call
                self._selector.register(call.sock, selectors.EVENT_WRITE, pid)
            self._pump(0.0)  # the requests go out now
        except BaseException:
            self._close()
            raise

    def wait(self) -> Replies:
        """Every answer that came by the deadline; each other target named with why."""
        try:
            self._pump(max(0.0, self._deadline - time.monotonic()))
            while self._calls and self._deadline > time.monotonic():
                self._pump(self._deadline - time.monotonic())
            for pid, call in self._calls.items():
                self._replies.missing[pid] = (
                    f"no answer within {self._timeout:g} s" if call.outgoing.nbytes == 0
                    else f"did not take the request within {self._timeout:g} s")
        finally:
            self._close()
        return self._replies

    def _pump(self, timeout: float) -> None:
        """Advance every call that is ready within ``timeout`` (0: only those ready now)."""
        while self._calls:
            ready = self._selector.select(timeout)
            if not ready:
                return
            for key, events in ready:
                self._advance(key.data, events)
            timeout = 0.0

    def _advance(self, pid: int, events: int) -> None:
        outcome = _step(self._calls[pid], events, self._selector)
        if outcome is None:
            return
        done, value = outcome
        self._selector.unregister(self._calls[pid].sock)
        self._calls.pop(pid).sock.close()
        if done:
            self._replies.answers[pid] = value
        else:
            self._replies.missing[pid] = value

    def _close(self) -> None:
        for call in self._calls.values():
            call.sock.close()
        self._calls.clear()
        self._selector.close()


def ask_all(targets: Mapping[int, ChannelAddress], kind: str, body: Any, timeout: float,
            max_answer_bytes: int = MAX_ANSWER_BYTES) -> Replies:
    """Ask every target the same request at once; return within ``timeout`` seconds."""
    return FanOut(targets, kind, body, timeout, max_answer_bytes).wait()


def _step(call: _Call, events: int, selector: selectors.BaseSelector
          ) -> tuple[bool, Any] | None:
    """Advance one call; (True, body) or (False, cause) when it is over, else None."""
    try:
        if events & selectors.EVENT_WRITE and call.outgoing.nbytes:
            sent = call.sock.send(call.outgoing)
            call.outgoing = call.outgoing[sent:]
            if not call.outgoing.nbytes:
                selector.modify(call.sock, selectors.EVENT_READ, call.key)
            return None
        if events & selectors.EVENT_READ:
            chunk = call.sock.recv(min(max(call.reader.wanted(), 4), 1 << 20))
            if not chunk:
                return False, "closed the connection without answering"
            payload = call.reader.feed(chunk)
            if payload is None:
                return None
            return True, wire.read_answer(payload)
    except BlockingIOError:
        return None
    except wire.RemoteError as error:
        return False, f"could not answer: {error}"
    except (OSError, wire.FrameError) as error:
        return False, f"answer unreadable ({error})"
    return None


def ask(address: ChannelAddress, kind: str, body: Any, timeout: float) -> Any:
    """Ask one worker; its answer's body, or TimeoutError / ConnectionError naming why."""
    replies = ask_all({address.pid: address}, kind, body, timeout)
    if address.pid in replies.answers:
        return replies.answers[address.pid]
    cause = replies.missing[address.pid]
    if cause.startswith(("no answer", "did not take")):
        raise TimeoutError(f"worker {address.pid}: {cause}")
    raise ConnectionError(f"worker {address.pid}: {cause}")
