"""A worker's listening side: one daemon thread accepts and checks the caller (a refused
one is closed unread). A request that has arrived whole is answered on that thread when
its kind is inline (quick), else handed to a short-lived thread (a few at most) that reads
the rest within the time and size bounds, answers, and closes."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common_api.peer_channel import wire
from common_api.peer_channel.address import ChannelAddress

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_SECONDS = 1.0
ANSWER_SECONDS = 5.0
MAX_CONCURRENT = 8
_CREDENTIALS = struct.Struct("3i")
_ACCEPT_POLL = 0.5


@dataclass(frozen=True)
class PeerCredentials:
    """Who is at the other end of a connected Unix socket, as the kernel says."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """The other end's pid, uid and gid (``SO_PEERCRED``), None where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _CREDENTIALS.size)
    except OSError:
        return None
    pid, uid, gid = _CREDENTIALS.unpack(raw)
    return PeerCredentials(pid, uid, gid) if pid > 0 else None


class PeerServer:
    """Answers requests on ``address``: ``handlers`` by kind, each given the request's
    body and returning the answer's (JSON-serialisable). Only callers that
    ``authorize`` accepts are read at all; the others are closed at once."""

    def __init__(self, address: ChannelAddress, handlers: Mapping[str, Handler],
                 authorize: Callable[[PeerCredentials], bool], *,
                 inline: Iterable[str] = (),
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 request_seconds: float = REQUEST_SECONDS,
                 max_concurrent: int = MAX_CONCURRENT) -> None:
        self.address = address
        self._handlers = dict(handlers)
        self._inline = set(inline)
        self._authorize = authorize
        self._max_request_bytes = max_request_bytes
        self._request_seconds = request_seconds
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failed_kinds: set[str] = set()
        self.refused = 0  # connections closed unread (for diagnostics and tests)

    def add_handler(self, kind: str, handler: Handler, inline: bool = False) -> None:
        """Answer ``kind`` with ``handler``. An ``inline`` handler is called on the
        listening thread itself when its request has arrived whole (it has, from a
        worker): half the round trip of a thread hop, but while it runs this worker
        takes no other request, so only quick handlers are inline."""
        self._handlers[kind] = handler
        if inline:
            self._inline.add(kind)
        else:
            self._inline.discard(kind)

    def start(self) -> None:
        """Bind and start answering (OSError when the name is taken or cannot be bound)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.address.prepare()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.address.sockaddr())
            listener.listen(64)
            listener.settimeout(_ACCEPT_POLL)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,),
                                        name="common-api-peer-channel", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * _ACCEPT_POLL + 1)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            self.address.release()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's socket and thread are not this process's."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        self._listener = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # out of file descriptors: let others close theirs
                continue
            try:
                self._admit(conn)
            except Exception:  # never let one connection end the loop
                log.exception("common_api: peer channel could not take a connection")
                conn.close()

    def _admit(self, conn: socket.socket) -> None:
        credentials = peer_credentials(conn)
        if credentials is None or not self._authorize(credentials):
            self.refused += 1
            conn.close()
            return
        reader = wire.FrameReader(self._max_request_bytes)
        try:
            payload = self._read_arrived(conn, reader)
        except (OSError, wire.FrameError):
            conn.close()
            return
        if payload is not None:
            try:
                message = wire.decode_object(payload)
            except wire.FrameError as error:
                self._send(conn, wire.failure(f"bad request: {error}"))
                return
            if message.get("kind") in self._inline:
                self._send(conn, self._answer(message))  # no thread hop: the quick path
                return
        if not self._slots.acquire(blocking=False):
            conn.close()  # the caller names this worker busy
            return
        try:
            threading.Thread(target=self._serve, args=(conn, reader, payload), daemon=True,
                             name="common-api-peer-request").start()
        except BaseException:
            self._slots.release()
            conn.close()
            raise

    def _serve(self, conn: socket.socket, reader: wire.FrameReader,
               payload: bytes | None) -> None:
        try:
            if payload is None:
                payload = self._read_request(conn, reader)
            if payload is None:
                conn.close()
                return
            try:
                answer = self._answer(wire.decode_object(payload))
            except wire.FrameError as error:
                answer = wire.failure(f"bad request: {error}")
            self._send(conn, answer)
        finally:
            self._slots.release()

    @staticmethod
    def _send(conn: socket.socket, data: bytes) -> None:
        with conn:
            conn.settimeout(ANSWER_SECONDS)
            with contextlib.suppress(OSError):
                conn.sendall(data)

    @staticmethod
    def _read_arrived(conn: socket.socket, reader: wire.FrameReader) -> bytes | None:
        """The request if it has all arrived already (a worker sends it as it connects),
        without waiting; None if more is to come. OSError when the caller hung up."""
        conn.setblocking(False)
        try:
            while True:
                chunk = conn.recv(min(reader.wanted(), 65536))
                if not chunk:
                    raise ConnectionResetError("closed before a whole request")
                payload = reader.feed(chunk)
                if payload is not None:
                    return payload
        except BlockingIOError:
            return None
        finally:
            conn.setblocking(True)

    def _read_request(self, conn: socket.socket, reader: wire.FrameReader) -> bytes | None:
        deadline = time.monotonic() + self._request_seconds
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                conn.settimeout(remaining)
                chunk = conn.recv(min(reader.wanted(), 65536))
                if not chunk:
                    return None
                payload = reader.feed(chunk)
                if payload is not None:
                    return payload
        except (OSError, wire.FrameError):
            return None

    def _answer(self, message: dict[str, Any]) -> bytes:
        kind = message.get("kind")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return wire.failure("unknown request kind")
        try:
            return wire.answer(handler(message.get("body")))
        except Exception as error:
            if kind not in self._failed_kinds:
                self._failed_kinds.add(str(kind))
                log.exception("common_api: worker %d could not answer a %r request",
                              os.getpid(), kind)
            return wire.failure(f"{type(error).__name__}: {str(error)[:300]}")
