"""Names only one worker of a server can hold at a time, without the disk.

A claim is an abstract Unix socket bound under the server's identity: the kernel lets one
process bind a name, so the first worker to claim it wins and the others learn at once
that it is taken. Used so that several workers noticing the same thing (a worker missing
from a scrape) log it once between them, and (``hold``) so that one worker at a time runs a
profile window. Where abstract names do not exist every claim succeeds (each process then
decides for itself), and ``hold`` is not offered (``ABSTRACT`` says which).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator

from common_api.peer_channel.address import ABSTRACT, PREFIX


class Claims:
    def __init__(self, identity: Callable[[], str], hold: float = 120.0) -> None:
        self._identity = identity
        self._hold = hold
        self._held: list[tuple[float, socket.socket]] = []
        self._lock = threading.Lock()

    def claim(self, name: str) -> bool:
        """True for the first process of the server to claim ``name`` (held ``hold`` s)."""
        with self._lock:
            self._expire()
            if not ABSTRACT:
                return True
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(self._name("claim", name))
            except OSError:
                sock.close()
                return False
            self._held.append((time.monotonic() + self._hold, sock))
            return True

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold ``name`` for the server while the block runs; ``BlockingIOError`` when
        another process holds it. Released when the block ends or the process exits, so
        nothing is left behind. Only where ``ABSTRACT``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(self._name("hold", name))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise BlockingIOError(errno.EADDRINUSE, f"{name} is held elsewhere") from None
            yield
        finally:
            sock.close()

    def _name(self, kind: str, name: str) -> str:
        return f"\0{PREFIX}/{self._identity()}/{kind}/{name}"

    def _expire(self) -> None:
        now = time.monotonic()
        kept = []
        for until, sock in self._held:
            if until > now:
                kept.append((until, sock))
                continue
            with contextlib.suppress(OSError):
                sock.close()
        self._held = kept
