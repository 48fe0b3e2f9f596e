"""The periodic thread: its schedule, its run accounting, its status, and fork safety."""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, overload

from common_api.periodic._levels import ThreadLevel
from common_api.periodic._stack import thread_stack
from common_api.periodic._status import render_status
from common_api.periodic._summary import IrrecoverableException, ThreadRunSummary, _bind

logger = logging.getLogger("common_api.periodic")

#: A thread whose last run began this many intervals ago (or longer) counts as stalled.
_ACTIVE_FACTOR = 3.0

#: Every PeriodicThread created and still referenced, for the fork handler.
_INSTANCES: weakref.WeakSet[PeriodicThread] = weakref.WeakSet()
_INSTANCES_LOCK = threading.Lock()


def _check_seconds(arg: str, value: object, *, allow_zero: bool) -> float:
    """Return ``value`` as float seconds, or raise an error that names ``arg``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{arg} must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{arg} must be a finite number {bound}, got {value!r}")
    return seconds


def _to_summary(result: object) -> ThreadRunSummary:
    """Interpret what a run returned: None/True/other values succeed, False fails."""
    if result is None:
        return ThreadRunSummary()
    if isinstance(result, ThreadRunSummary):
        return result
    if isinstance(result, bool):
        return ThreadRunSummary(success=result,
                                message="" if result else "execute_fn returned False")
    return ThreadRunSummary(message=str(result))


_THREAD_ARGS = ("level", "init_wait")


class PeriodicThread:
    """Runs its work every ``interval`` seconds on a daemon thread named ``name``.

    The work is ``execute_fn`` (``PeriodicThread(name, interval, execute_fn, level=...,
    init_wait=...)``) or, LMCache's form, the ``_execute()`` of a subclass
    (``super().__init__(name, interval, level, init_wait)``); one of the two is required.
    The first run comes ``init_wait`` seconds after :meth:`start`. The schedule is measured
    from the start of each run, so slow runs do not drift it; a run that overruns the
    interval is followed at once by the next. Failed runs are counted and logged and the
    thread goes on, except after :class:`IrrecoverableException`, which ends it.
    All state is guarded by one lock, so :meth:`get_status` is a consistent snapshot.
    """

    @overload
    def __init__(self, name: str, interval: float, level: ThreadLevel | str = ThreadLevel.MEDIUM,
                 init_wait: float = 0.0) -> None: ...

    @overload
    def __init__(self, name: str, interval: float, execute_fn: Callable[[], object],
                 level: ThreadLevel | str = ThreadLevel.MEDIUM, init_wait: float = 0.0) -> None: ...

    def __init__(self, name: str, interval: float, *args: Any, **kwargs: Any) -> None:
        execute_fn: Any = None
        if args and callable(args[0]) and not isinstance(args[0], str):
            execute_fn, args = args[0], args[1:]
            if "execute_fn" in kwargs:
                raise TypeError("PeriodicThread() got multiple values for argument 'execute_fn'")
        values = _bind("PeriodicThread", _THREAD_ARGS, args, kwargs,
                       {"level", "init_wait", "execute_fn"})
        execute_fn = values.get("execute_fn", execute_fn)
        level = values.get("level", ThreadLevel.MEDIUM)
        init_wait = values.get("init_wait", 0.0)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not name.strip():
            raise ValueError("name must be a non-empty string")
        overridden = type(self)._execute is not PeriodicThread._execute
        if execute_fn is None and not overridden:
            raise TypeError("PeriodicThread needs an execute_fn, or a subclass that overrides "
                            "_execute()")
        if execute_fn is not None and not callable(execute_fn):
            raise TypeError(f"execute_fn must be callable, got {type(execute_fn).__name__}")
        if execute_fn is not None and overridden:
            raise TypeError(f"{type(self).__name__} overrides _execute(); pass no execute_fn")
        self._name = name
        self._interval = _check_seconds("interval", interval, allow_zero=False)
        self._init_wait = _check_seconds("init_wait", init_wait, allow_zero=True)
        if not isinstance(level, str):  # a ThreadLevel is a str too
            raise TypeError(f"level must be a ThreadLevel or str, got {type(level).__name__}")
        self._level = ThreadLevel.parse(level)
        self._execute_fn: Callable[[], object] | None = execute_fn
        self._reset_state()
        with _INSTANCES_LOCK:
            _INSTANCES.add(self)

    def __repr__(self) -> str:
        state = "running" if getattr(self, "_running", False) else "stopped"
        level = getattr(getattr(self, "_level", None), "value", "?")
        return f"<{type(self).__name__} {getattr(self, '_name', '?')!r} {level} {state}>"

    def _reset_state(self) -> None:
        """Create fresh locks and forget run history: at construction, and in a forked child
        (whose inherited lock may be held by a thread that is gone, and counters are the parent's).
        """
        # Reentrant, like LMCache's: a subclass may read this thread's properties while it
        # holds ``self._lock`` for its own state.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # Set while a stop is pending, for subclasses that wait on it as LMCache's do.
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stop_requested = False
        self._wake_requested = False
        self._started_mono: float | None = None
        self._last_run_time: float | None = None
        self._last_run_mono: float | None = None
        self._total_runs = 0
        self._failed_runs = 0
        self._last_summary: ThreadRunSummary | None = None

    def _execute(self) -> object:
        """One run of the work: LMCache subclasses override this to return a
        :class:`ThreadRunSummary`; by default it calls ``execute_fn``. May also return None
        (success), a bool, or anything else (success, its ``str()`` as the message)."""
        if self._execute_fn is None:  # pragma: no cover - refused by __init__
            raise TypeError("no execute_fn")
        return self._execute_fn()

    @property
    def name(self) -> str:
        """The unique name in the registry, also the name of the OS-level thread."""
        return self._name

    @property
    def level(self) -> ThreadLevel:
        """How much the component depends on this thread."""
        return self._level

    @property
    def interval(self) -> float:
        """Seconds from the start of one run to the start of the next."""
        return self._interval

    @property
    def init_wait(self) -> float:
        """Seconds from :meth:`start` to the first run."""
        return self._init_wait

    @property
    def is_running(self) -> bool:
        """True from :meth:`start` until the loop ends (stopped or irrecoverable)."""
        with self._lock:
            return self._running

    @property
    def is_active(self) -> bool:
        """True when running and not stalled (see :meth:`_is_active_locked`)."""
        with self._lock:
            return self._is_active_locked(time.monotonic())

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`stop` was asked and the loop has not ended yet: a long run can
        check it and return early."""
        with self._lock:
            return self._running and self._stop_requested

    @property
    def last_run_time(self) -> float:
        """Wall-clock time (``time.time()``) at which the last run began; 0.0 before the first."""
        with self._lock:
            return self._last_run_time or 0.0

    @property
    def total_runs(self) -> int:
        """Completed runs, successful or not."""
        with self._lock:
            return self._total_runs

    @property
    def failed_runs(self) -> int:
        """Completed runs that returned False, a failed summary, or raised."""
        with self._lock:
            return self._failed_runs

    @property
    def last_summary(self) -> ThreadRunSummary | None:
        """The outcome of the last completed run (timing filled in), or None before the first."""
        with self._lock:
            return self._last_summary

    def current_stack(self) -> list[str]:
        """Where this thread's OS thread is now: ``module:function (file:line)`` per frame,
        innermost last, at most 30; empty when it is not alive."""
        with self._lock:
            thread = self._thread
        return thread_stack(thread.ident if thread is not None and thread.is_alive() else None)

    def _is_active_locked(self, now: float) -> bool:
        """SPEC rule: running, and the last run since start began < 3 x interval ago
        (before that run: less than ``init_wait + 3 x interval`` since :meth:`start`)."""
        if not self._running or self._started_mono is None:
            return False
        limit = _ACTIVE_FACTOR * self._interval
        last = self._last_run_mono
        if last is not None and last >= self._started_mono:
            return now - last < limit
        return now - self._started_mono < self._init_wait + limit

    def start(self) -> threading.Thread | None:
        """Start the loop and return its ``threading.Thread``; None (doing nothing) if it is
        already running.

        A loop asked to stop whose run has not finished yet is told to carry on instead (its
        thread is returned), so two runs of the work never overlap.
        """
        with self._lock:
            if self._running:
                if not self._stop_requested:
                    logger.debug("Periodic thread %s is already running", self._name)
                    return None
                self._stop_requested = False
                self._stop_event.clear()
                return self._thread
            thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._running, self._stop_requested, self._wake_requested = True, False, False
            self._stop_event.clear()
            self._started_mono = time.monotonic()
            self._thread = thread
            try:
                thread.start()
            except BaseException:
                self._running, self._thread = False, None
                raise
        return thread

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the loop to end and wait up to ``timeout`` seconds; True if it has ended.

        Waiting is interrupted at once, but a run in progress is finished first. Called from
        inside the work it only asks (joining itself would deadlock) and returns False;
        the thread ends when that run returns.
        """
        with self._lock:
            thread = self._thread
            if not self._running or thread is None:
                return True
            self._stop_requested = True
            self._stop_event.set()
            self._cond.notify_all()
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("Periodic thread %s did not stop within %.1f s (a run is in progress)",
                           self._name, timeout)
            return False
        return True

    def wake(self) -> None:
        """Run now instead of waiting out the interval or init_wait (or right after this run)."""
        with self._lock:
            if self._running:
                self._wake_requested = True
                self._cond.notify_all()

    def get_status(self) -> dict[str, Any]:
        """LMCache's status dict, one consistent snapshot: ``last_run_time`` in epoch seconds
        (0.0 before the first run), ``success_rate`` a percentage (None before the first run).
        The HTTP endpoints render it with ISO-8601 times (``services.periodic_status``)."""
        with self._lock:
            now = time.monotonic()
            running, active = self._running, self._is_active_locked(now)
            wall, mono = self._last_run_time, self._last_run_mono
            total, failed, summary = self._total_runs, self._failed_runs, self._last_summary
        return {
            "name": self._name,
            "level": self._level.value,
            "interval": self._interval,
            "init_wait": self._init_wait,
            "is_running": running,
            "is_active": active,
            "last_run_time": wall or 0.0,
            "last_run_ago": None if mono is None else now - mono,
            "total_runs": total,
            "failed_runs": failed,
            "success_rate": (total - failed) / total * 100 if total else None,
            "last_summary": None if summary is None else summary.to_dict(),
        }

    def status(self) -> dict[str, Any]:
        """The status as the HTTP endpoints render it (``last_run_time`` in ISO-8601); kept for
        code written against this package before :meth:`get_status`."""
        own = type(self).get_status is not PeriodicThread.get_status
        return render_status(PeriodicThread.get_status(self),
                             self._extra_status() if own else {}, self.current_stack)

    def _extra_status(self) -> dict[str, Any]:
        """What a subclass's own ``get_status()`` adds; nothing if it fails (it must not
        take the endpoint down, and the framework's own fields never come from it)."""
        try:
            extra = self.get_status()
        except Exception:
            logger.exception("get_status() of periodic thread %s failed", self._name)
            return {}
        return {str(k): v for k, v in extra.items()} if isinstance(extra, dict) else {}

    def _loop(self) -> None:
        """Body of the OS thread: init_wait, then run and sleep until told to stop."""
        try:
            # Without init_wait a wake() that came before the first run carries over to the
            # first interval, as in LMCache (it has no wait to cut short).
            if not (self._sleep(self._init_wait) if self._init_wait > 0 else self._carry_on()):
                return
            while True:
                began = time.monotonic()
                if not self._run_once(began):
                    return
                if not self._sleep(self._interval - (time.monotonic() - began)):
                    return
        finally:
            # For a BaseException escaping the work; a newer loop may own the state by now.
            with self._lock:
                if self._thread is threading.current_thread():
                    self._running = False

    def _carry_on(self) -> bool:
        """False (marking the loop ended, under the lock) if a stop is pending."""
        with self._lock:
            if self._stop_requested:
                self._running = self._stop_requested = False
                return False
            return True

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless woken; on stop return False, marking the loop ended under
        the same lock so a concurrent :meth:`start` either resumes this loop or starts another.
        """
        deadline = time.monotonic() + seconds
        with self._cond:
            while not (self._stop_requested or self._wake_requested):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._wake_requested = False
            return self._carry_on()

    def _run_once(self, began: float) -> bool:
        """Run the work once and record the outcome; False when the thread must end."""
        wall = time.time()
        with self._lock:
            self._last_run_time, self._last_run_mono = wall, began
        irrecoverable = False
        try:
            summary = _to_summary(self._execute())
        except IrrecoverableException as exc:
            irrecoverable = True
            summary = ThreadRunSummary(success=False, message=f"{type(exc).__name__}: {exc}")
            logger.error("Periodic thread %s failed irrecoverably; it stops", self._name,
                         exc_info=True)
        except Exception as exc:
            summary = ThreadRunSummary(success=False, message=f"{type(exc).__name__}: {exc}")
            logger.exception("Periodic thread %s run failed", self._name)
        else:
            if not summary.success:
                logger.warning("Periodic thread %s run failed: %s", self._name, summary.message)
        summary = summary._stamped(wall, (time.monotonic() - began) * 1000.0)
        with self._lock:
            self._total_runs += 1
            self._failed_runs += 0 if summary.success else 1
            self._last_summary = summary
            if irrecoverable:
                self._running = self._stop_requested = False
        return not irrecoverable

    def _after_fork_in_child(self) -> None:
        """Start afresh in a forked child, running again if the parent's loop was running."""
        was_running = self._running and not self._stop_requested
        self._reset_state()
        if was_running:
            self.start()


def _after_fork_in_child() -> None:
    """Restart, on new locks, the threads that ran in the parent when it forked."""
    global _INSTANCES_LOCK
    _INSTANCES_LOCK = threading.Lock()
    for thread in list(_INSTANCES):
        try:
            thread._after_fork_in_child()
        except Exception:
            logger.exception("Could not restart periodic thread %s after fork", thread.name)
