"""What an escaped script leaves on the machine, observed from outside the sandbox.

The wide corpus (issue 16) attacks the machine, not only the script's answer: it
sets the clock, signals the worker, starts processes that outlive the request and
creates files. Each observer here sees one of those effects for itself, so a test
does not have to take the script's word for it:

* :class:`ClockWatch`: a ``timerfd`` armed with ``TFD_TIMER_CANCEL_ON_SET``, which the
  kernel cancels when anybody sets ``CLOCK_REALTIME`` (even to the current time);
* :class:`SignalWatch`: a handler in this process (the worker of an in-process
  runner) counting a signal;
* :func:`tagged_processes`: processes whose command line carries the corpus's tag
  (every process the corpus starts carries it), which :func:`stop_processes` kills;
* a marker directory the test gives the script (``@MARKER_DIR@`` in its source),
  which must stay empty.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from pathlib import Path
from types import FrameType, TracebackType

from sandbox.corpus_tools import shows_escape
from sandbox.helpers import assert_no_canary
from support import wait_until

#: In the command line of every process a corpus script starts.
PROCESS_TAG = b"common-api-corpus-"

_TFD_TIMER_ABSTIME = 1
_TFD_TIMER_CANCEL_ON_SET = 2
_YEAR = 365 * 24 * 3600


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class ClockWatch:
    """Tells whether ``CLOCK_REALTIME`` was set while the watch was open."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.timerfd_create(time.CLOCK_REALTIME, os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        expiry = _Itimerspec(_Timespec(0, 0), _Timespec(int(time.time()) + _YEAR, 0))
        flags = _TFD_TIMER_ABSTIME | _TFD_TIMER_CANCEL_ON_SET
        if libc.timerfd_settime(self.fd, flags, ctypes.byref(expiry), None) != 0:
            code = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(code, "timerfd_settime")

    def was_set(self) -> bool:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                return True
            raise
        return False  # expired: a year has passed

    def __enter__(self) -> ClockWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.close(self.fd)


class SignalWatch:
    """Counts ``signum`` delivered to this process while open (main thread only)."""

    def __init__(self, signum: signal.Signals) -> None:
        self.signum = signum
        self.received = 0
        self._previous: object = None

    def _count(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1

    def __enter__(self) -> SignalWatch:
        self._previous = signal.signal(self.signum, self._count)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        signal.signal(self.signum, self._previous)  # type: ignore[arg-type]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def tagged_processes() -> list[int]:
    """Live processes started by a corpus script (their command line has the tag)."""
    own = os.getpid()
    return sorted(
        int(entry.name) for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and int(entry.name) != own
        and PROCESS_TAG in _cmdline(int(entry.name)) and _alive(int(entry.name))
    )


def leftover_processes(grace: float = 2.0) -> list[int]:
    """Tagged processes still alive ``grace`` seconds after a script's answer (a
    sandbox may take a moment to kill what its child started)."""
    try:
        wait_until(lambda: not tagged_processes(), grace, interval=0.05)
    except AssertionError:
        return tagged_processes()
    return []


def stop_processes(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still carries the tag, and wait until it is gone."""
    for pid in pids:
        if PROCESS_TAG in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(_alive(pid) for pid in pids), 10, interval=0.02,
               message=f"corpus processes {pids} gone")


def describe(pid: int) -> str:
    """``pid`` and its command line, for a failure message."""
    words = _cmdline(pid).split(b"\0")
    return " ".join([str(pid), *(w.decode(errors="replace") for w in words if w)])


def escape_evidence(answer: str, marker_dir: Path, leftovers: list[str],
                    clock_set: bool, signals: int = 0) -> list[str]:
    """Every sign of an escape: an empty list when the sandbox held."""
    found: list[str] = []
    if shows_escape(answer):
        found.append(f"the answer shows an escape: {answer!r}")
    else:
        assert_no_canary(answer)
    if leftovers:
        found.append(f"processes outlived the request: {leftovers}")
    written = sorted(p.name for p in marker_dir.iterdir())
    if written:
        found.append(f"files were created in {marker_dir}: {written}")
    if clock_set:
        found.append("the system clock was set")
    if signals:
        found.append(f"the worker received {signals} signal(s)")
    return found
