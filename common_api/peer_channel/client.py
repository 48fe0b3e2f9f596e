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


def ask_all(targets: Mapping[int, ChannelAddress], kind: str, body: Any, timeout: float,
            max_answer_bytes: int = MAX_ANSWER_BYTES) -> Replies:
    """Ask every target the same request at once; return within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    replies = Replies()
    request = wire.request(kind, body)
    selector = selectors.DefaultSelector()
    calls: dict[int, _Call] = {}
    try:
        for pid, address in targets.items():
            call = _Call(pid, address, request, max_answer_bytes)
            problem = call.connect()
            if problem is not None:
                call.sock.close()
                replies.missing[pid] = problem
                continue
            calls[pid] = call
            selector.register(call.sock, selectors.EVENT_WRITE, pid)
        while calls:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, events in selector.select(remaining):
                pid = key.data
                outcome = _step(calls[pid], events, selector)
                if outcome is None:
                    continue
                done, value = outcome
                selector.unregister(calls[pid].sock)
                calls.pop(pid).sock.close()
                if done:
                    replies.answers[pid] = value
                else:
                    replies.missing[pid] = value
        for pid, call in calls.items():
            replies.missing[pid] = (f"no answer within {timeout:g} s" if call.outgoing.nbytes
                                    == 0 else f"did not take the request within {timeout:g} s")
    finally:
        for call in calls.values():
            call.sock.close()
        selector.close()
    return replies


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
