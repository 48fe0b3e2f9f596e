"""Stalling a whole worker process, as a C extension holding the GIL would."""

from __future__ import annotations

import ctypes
import time


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def hold_gil(seconds: float) -> None:
    """Block the whole process for ``seconds``: a C call made while holding the GIL.

    ``pthread_mutex_timedlock`` on a normal mutex this thread already holds waits until the
    deadline; POSIX forbids it to return EINTR, so signals (faulthandler's, gunicorn's)
    run their C handlers and the wait goes on. ``ctypes.PyDLL`` keeps the GIL during the call.
    """
    libc = ctypes.PyDLL(None)
    mutex = ctypes.create_string_buffer(128)  # zeroed: PTHREAD_MUTEX_INITIALIZER on Linux
    libc.pthread_mutex_lock(mutex)
    deadline = time.time() + seconds
    until = _Timespec(int(deadline), int((deadline % 1) * 1e9))
    libc.pthread_mutex_timedlock(mutex, ctypes.byref(until))
    libc.pthread_mutex_unlock(mutex)
