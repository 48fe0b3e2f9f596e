"""One window at a time per server: a profile (or a memory window) that starts while
another runs is refused with 429 rather than queued or overlapped, since two would distort
each other and double the cost to the host."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from common_api.errors import Busy, Unavailable
from common_api.file_locks import file_lock


class ExclusiveWindow:
    """A try-lock over this process's threads and, when ``lock_path`` is given (the
    server's state directory), over every worker of the server (an ``flock``'d file)."""

    def __init__(self, what: str, lock_path: Path | None = None) -> None:
        self._what = what
        self._lock_path = lock_path
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
            if self._lock_path is None:
                yield
                return

            def unavailable(error: OSError) -> Unavailable:
                return Unavailable(f"Cannot take the server-wide {self._what} lock "
                                   f"{str(self._lock_path)!r}: {error.strerror}")

            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(file_lock(self._lock_path, blocking=False,
                                                 on_open_error=unavailable))
                except BlockingIOError:
                    raise self._refuse() from None
                yield
        finally:
            self._local.release()
