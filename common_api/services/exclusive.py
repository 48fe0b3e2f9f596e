"""One window at a time per server: a profile (or a memory window) that starts while
another runs is refused with 429 rather than queued or overlapped, since two would distort
each other and double the cost to the host."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from common_api.errors import Busy


class ExclusiveWindow:
    """A try-lock over this process's threads and, with ``server_lock`` (which gives the
    server's turn for the block, ``BlockingIOError`` when another worker has it), over
    every worker of the server."""

    def __init__(self, what: str,
                 server_lock: Callable[[], AbstractContextManager[object]] | None = None
                 ) -> None:
        self._what = what
        self._server_lock = server_lock or contextlib.nullcontext
        self._local = threading.Lock()

    def _refuse(self) -> Busy:
        return Busy(f"Another {self._what} is running in this server (one at a time); "
                    "try again when it ends")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the window for the block; ``Busy`` at once if it is taken."""
        if not self._local.acquire(blocking=False):
            raise self._refuse()
        try:
            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(self._server_lock())
                except BlockingIOError:
                    raise self._refuse() from None
                yield
        finally:
            self._local.release()
