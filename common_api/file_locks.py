"""The one file-lock helper: an advisory ``flock`` on a path, shared by every process that
opens it (the workers of one server, a collector and the worker it dumps)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator

_held = threading.local()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], exclusive: bool = True, blocking: bool = True,
              on_open_error: Callable[[OSError], BaseException] | None = None,
              reentrant: bool = False) -> Iterator[int]:
    """Hold the lock on ``path`` for the block; yields the locked descriptor.

    ``reentrant``: a nested lock of the same path in the same thread is already held
    (else it is a second descriptor, which ``flock`` treats as another holder). On a
    read-only file system the file is opened read-only, which still locks. When it cannot
    be opened, ``on_open_error(error)`` is raised (the ``OSError`` itself without one); not
    ``blocking`` and held elsewhere, ``BlockingIOError``.
    """
    key = os.fspath(path)
    held: dict[str, tuple[int, int]] = _held.__dict__.setdefault("held", {})
    if reentrant and key in held:
        fd, depth = held[key]
        held[key] = (fd, depth + 1)
        try:
            yield fd
        finally:
            held[key] = (fd, depth)
        return
    try:
        fd = _open(key)
    except OSError as error:
        if on_open_error is None:
            raise
        raise on_open_error(error) from None
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        fcntl.flock(fd, mode if blocking else mode | fcntl.LOCK_NB)
        if not reentrant:
            yield fd
            return
        held[key] = (fd, 1)
        try:
            yield fd
        finally:
            del held[key]
    finally:
        os.close(fd)


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.ENOSPC):
            raise
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise error from None
