"""Names only one worker of a server can hold at a time, without the disk.

A claim is an abstract Unix socket bound under the server's identity: the kernel lets one
process bind a name, so the first worker to claim it wins and the others learn at once
that it is taken. Used so that several workers noticing the same thing (a worker missing
from a scrape) log it once between them. Where abstract names do not exist every claim
succeeds (each process then decides for itself).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

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
                sock.bind(f"\0{PREFIX}/{self._identity()}/claim/{name}")
            except OSError:
                sock.close()
                return False
            self._held.append((time.monotonic() + self._hold, sock))
            return True

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
