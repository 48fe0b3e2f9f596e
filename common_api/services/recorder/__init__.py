"""The flight recorder: an always-on, low-rate, bounded history of this process's stacks, so
that ``/profile?last=SECONDS`` can show what the component did before anyone looked.

One recorder per process (sampling sees the whole process, whichever app asked for it):
:func:`start_recorder` starts it, or lengthens the history it keeps. It lives in memory
only: a forked child (a gunicorn worker) starts a new, empty one, so a worker that restarts
starts a new history, and no fault of the state directory can touch it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from common_api.services.recorder.history import (
    MEMORY_BUDGET,
    SampleHistory,
    Span,
    current_frames,
    thread_names,
)

__all__ = ["HZ", "MEMORY_BUDGET", "RECORDER_THREAD_NAME", "FlightRecorder", "SampleHistory",
           "Span", "process_recorder", "release_recorder", "start_recorder"]

log = logging.getLogger(__name__)

#: Ticks a second: every thread's stack this often (about 0.1 % of a core for a worker with
#: a dozen threads: ``benchmarks/bench_flight_recorder.py``).
HZ = 10
RECORDER_THREAD_NAME = "common-api-recorder"


class FlightRecorder:
    """A daemon thread that adds a tick to ``history`` ``HZ`` times a second."""

    def __init__(self, seconds: float, hz: int = HZ) -> None:
        self.history = SampleHistory(seconds, hz)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def seconds(self) -> float:
        return self.history.seconds

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=RECORDER_THREAD_NAME,
                                            daemon=True)
            self._thread.start()

    def restart_empty(self) -> None:
        """In a forked child: forget the parent's samples and sample this process."""
        history = self.history
        self.history = SampleHistory(history.seconds, history.hz, history.budget)
        self._stop = threading.Event()
        self._thread = None
        self.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        own = threading.get_ident()
        period = 1.0 / self.history.hz
        next_tick = time.monotonic()
        while True:
            try:
                self.history.record(current_frames(), thread_names(), own, time.monotonic(),
                                    time.time())
            except Exception:  # the recorder must never take its process down with it
                log.exception("common_api: the flight recorder failed to take a sample")
            next_tick = max(next_tick + period, time.monotonic())
            if self._stop.wait(next_tick - time.monotonic()):
                return


_lock = threading.Lock()
_recorder: FlightRecorder | None = None
_users = 0  # apps of the process that started it and have not released it


def start_recorder(seconds: float) -> FlightRecorder | None:
    """The process's recorder, started (keeping at least ``seconds`` of history); None
    when ``seconds`` is 0 and no app of the process asked for one. Each app that gets one
    by asking for ``seconds`` > 0 gives it back with ``release_recorder`` when it closes."""
    global _recorder, _users
    with _lock:
        if seconds <= 0:
            return _recorder
        if _recorder is None:
            _recorder = FlightRecorder(seconds)
        elif _recorder.seconds < seconds:
            _recorder.history.seconds = seconds
        _recorder.start()
        _users += 1
        return _recorder


def release_recorder() -> None:
    """An app that started the recorder is closing: the last one stops its thread (its
    history goes with it)."""
    global _recorder, _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _recorder is not None:
            recorder, _recorder = _recorder, None
            recorder.stop()


def process_recorder() -> FlightRecorder | None:
    """The process's recorder, if one was started."""
    return _recorder


def _after_fork_in_child() -> None:
    """A new, empty history in the child, in the same recorder object (apps set up before
    the fork hold it): the parent's samples are the parent's, and its thread is gone."""
    global _lock
    _lock = threading.Lock()
    if _recorder is not None:
        _recorder.restart_empty()


os.register_at_fork(after_in_child=_after_fork_in_child)
