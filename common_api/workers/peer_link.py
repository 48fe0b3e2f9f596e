"""This worker's end of the peer channel (``common_api.peer_channel``): its listening
socket, served from a daemon thread, and the asking of its siblings.

The server's identity is its state directory and its master's pid, so two servers on
one machine (or one after a master re-exec) never reach each other's workers. Only the
server's other workers may ask (same user, a pid that is a sibling from ``/proc``); a
sibling that is stopped (SIGSTOP, a debugger) is not asked, it is named at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from common_api.errors import Unavailable, describe_error
from common_api.file_locks import file_lock
from common_api.peer_channel import (
    ABSTRACT,
    ChannelAddress,
    Claims,
    FanOut,
    Handler,
    PeerCredentials,
    PeerServer,
    Replies,
    server_identity,
)
from common_api.workers import peers

log = logging.getLogger(__name__)

STOPPED = "stopped by SIGSTOP or a debugger"


def _authorize(credentials: PeerCredentials) -> bool:
    return credentials.uid == os.geteuid() and peers.is_sibling(credentials.pid)


class PeerLink:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._server: PeerServer | None = None
        self._lock = threading.Lock()
        self._claims = Claims(self.identity)

    def identity(self) -> str:
        return server_identity(self._root, os.getppid())

    @staticmethod
    def released(root: Path, pid: int) -> None:
        """In the master, after worker ``pid`` exited: remove its socket file (where
        sockets are files; an abstract name goes with the process)."""
        ChannelAddress(server_identity(root, os.getpid()), pid).release()

    def claim(self, name: str) -> bool:
        """True for the first worker of the server to claim ``name`` (for two minutes)."""
        return self._claims.claim(name)

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold ``name`` for the server while the block runs; ``BlockingIOError`` when
        another worker holds it, ``Unavailable`` naming why when it cannot be taken. No
        disk where abstract names exist (a full, read-only or deleted state directory
        changes nothing), else a lock file in the state directory."""
        def unavailable(error: OSError) -> Unavailable:
            return Unavailable(f"Cannot take the server-wide {name} lock: "
                               f"{describe_error(error)}")

        lock = (self._claims.hold(name) if ABSTRACT else
                file_lock(self._root / f"{name}.lock", blocking=False,
                          on_open_error=unavailable))
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(lock)
            except BlockingIOError:
                raise
            except OSError as error:
                raise unavailable(error) from None
            yield

    def address(self, pid: int) -> ChannelAddress:
        return ChannelAddress(self.identity(), pid)

    def handle(self, kind: str, handler: Handler, inline: bool = False) -> None:
        """Answer requests of ``kind`` with ``handler`` (before or after ``start``;
        ``inline``: see ``PeerServer.add_handler``)."""
        with self._lock:
            self._handlers[kind] = (handler, inline)
            if self._server is not None:
                self._server.add_handler(kind, handler, inline)

    def start(self) -> None:
        """Listen in this process (after a fork, afresh); OSError if it cannot."""
        with self._lock:
            if self._server is not None and self._server.address.pid == os.getpid() and \
                    self._server.running:
                return
            if self._server is not None:
                self._server.forget_after_fork()
            server = PeerServer(self.address(os.getpid()), {}, _authorize)
            for kind, (handler, inline) in self._handlers.items():
                server.add_handler(kind, handler, inline)
            self._server = server
            server.start()

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()

    @property
    def listening(self) -> bool:
        server = self._server
        return server is not None and server.running and server.address.pid == os.getpid()

    def ask_siblings(self, kind: str, body: object, timeout: float) -> Replies:
        """Ask every other live worker at once; answers and the missing ones by pid."""
        return self.begin_asking_siblings(kind, body, timeout)()

    def begin_asking_siblings(self, kind: str, body: object, timeout: float
                              ) -> Callable[[], Replies]:
        """``ask_siblings`` in two halves: the requests go out now, the returned function
        collects the answers (within ``timeout`` from now)."""
        stopped: dict[int, str] = {}
        targets: dict[int, ChannelAddress] = {}
        for worker in peers.server_workers():
            if worker.stopped:
                stopped[worker.pid] = STOPPED
            else:
                targets[worker.pid] = self.address(worker.pid)
        fan_out = FanOut(targets, kind, body, timeout) if targets else None

        def finish() -> Replies:
            replies = fan_out.wait() if fan_out is not None else Replies()
            for pid in replies.missing:
                if peers.is_stopped(pid):
                    replies.missing[pid] = STOPPED
            replies.missing.update(stopped)
            return replies

        return finish
