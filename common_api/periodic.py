"""Periodic background threads for components, and the registry the endpoints report on.

Components run recurring work (heartbeats, evictions, metric pushes) as a :class:`PeriodicThread`
so operators can see, through ``/periodic-threads`` and ``/periodic-threads-health``, whether that
work still happens. Standard library only, so service code can use it without Flask. Fork-safe:
gunicorn may start the threads in the master and fork workers; each child restarts them.

Two ways to define a thread, both supported for good: a function (``create_periodic_thread`` or
``PeriodicThread(name, interval, execute_fn)``), or LMCache's form, a subclass that overrides
``_execute()``. The interface is LMCache's (``lmcache/v1/periodic_thread.py``), so its components
port by changing the import; the README lists where this module deliberately differs.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, overload

__all__ = ["IrrecoverableException", "PeriodicThread", "PeriodicThreadRegistry", "ThreadLevel",
           "ThreadRunSummary", "create_periodic_thread"]

logger = logging.getLogger("common_api.periodic")

#: A thread whose last run began this many intervals ago (or longer) counts as stalled.
_ACTIVE_FACTOR = 3.0

#: Every PeriodicThread created and still referenced, for the fork handler.
_INSTANCES: weakref.WeakSet[PeriodicThread] = weakref.WeakSet()
_INSTANCES_LOCK = threading.Lock()


class ThreadLevel(str, Enum):  # noqa: UP042 -- (str, Enum) is the documented public type
    """How much a component depends on a thread; ``CRITICAL`` and ``HIGH`` decide health."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @classmethod
    def parse(cls, value: str) -> ThreadLevel:
        """Return the level named by ``value``, any case; the error is the seed's 400 message."""
        if isinstance(value, str):
            for level in cls:
                if level.value == value.lower():
                    return level
        valid = ", ".join(level.value for level in cls)
        raise ValueError(f"Invalid level: {value}. Valid values: {valid}")


@dataclass(init=False)
class ThreadRunSummary:
    """What one run of a periodic thread reports: whether it worked, why not, and extra facts.

    LMCache's fields, in LMCache's order. ``timestamp`` (wall-clock start of the run) and
    ``duration_ms`` are filled in by the framework for every run, whatever the run returned.
    ``details`` is this package's older name for ``extra_info`` (keyword and attribute), and
    ``ThreadRunSummary(success, message, details)`` with a bool first still means that, since
    a bool is never a timestamp.
    """

    timestamp: float = 0.0
    duration_ms: float = 0.0
    success: bool = True
    message: str = ""
    extra_info: dict[str, Any] = field(default_factory=dict)

    @overload
    def __init__(self, success: bool, message: str = "",
                 details: Mapping[str, Any] | None = None) -> None: ...

    @overload
    def __init__(self, timestamp: float = 0.0, duration_ms: float = 0.0, success: bool = True,
                 message: str = "", extra_info: Mapping[str, Any] | None = None, *,
                 details: Mapping[str, Any] | None = None) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = _LEGACY_SUMMARY_ARGS if args and isinstance(args[0], bool) else _SUMMARY_ARGS
        values = _bind("ThreadRunSummary", names, args, kwargs,
                       {"timestamp", "duration_ms", "success", "message", "extra_info",
                        "details"})
        if "details" in values:
            if "extra_info" in values:
                raise TypeError("ThreadRunSummary takes extra_info or details, not both")
            values["extra_info"] = values.pop("details")
        extra = values.get("extra_info")
        self.timestamp = values.get("timestamp", 0.0)
        self.duration_ms = values.get("duration_ms", 0.0)
        self.success = values.get("success", True)
        self.message = values.get("message", "")
        self.extra_info = {} if extra is None else dict(extra)

    @property
    def details(self) -> dict[str, Any]:
        """The same dict as :attr:`extra_info` (this package's earlier name for it)."""
        return self.extra_info

    @details.setter
    def details(self, value: Mapping[str, Any]) -> None:
        self.extra_info = dict(value)

    def to_dict(self) -> dict[str, Any]:
        """A copy with LMCache's keys, as in ``get_status()["last_summary"]``."""
        return {"timestamp": self.timestamp, "duration_ms": self.duration_ms,
                "success": self.success, "message": self.message,
                "extra_info": dict(self.extra_info)}

    def _stamped(self, timestamp: float, duration_ms: float) -> ThreadRunSummary:
        """A copy with the run's timing filled in: what the thread records (the object the run
        returned is left alone, so a summary shared between runs or threads stays as it was)."""
        return ThreadRunSummary(timestamp=timestamp, duration_ms=duration_ms,
                                success=self.success, message=self.message,
                                extra_info=self.extra_info)


_SUMMARY_ARGS = ("timestamp", "duration_ms", "success", "message", "extra_info")
_LEGACY_SUMMARY_ARGS = ("success", "message", "details")


def _bind(owner: str, positional: tuple[str, ...], args: tuple[Any, ...],
          kwargs: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """Bind ``args`` to the names ``positional`` and merge ``kwargs``, with Python's errors."""
    if len(args) > len(positional):
        raise TypeError(f"{owner}() takes at most {len(positional)} positional arguments "
                        f"here ({len(args)} given)")
    values = dict(zip(positional, args, strict=False))
    for key, value in kwargs.items():
        if key not in allowed:
            raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
        if key in values:
            raise TypeError(f"{owner}() got multiple values for argument {key!r}")
        values[key] = value
    return values


class IrrecoverableException(Exception):
    """Raised by ``execute_fn`` when running again is pointless: the run fails, the thread ends.

    It can be started again with :meth:`PeriodicThread.start` once the cause is fixed.
    """


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


_UNSET: Any = object()
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
        state = "running" if self._running else "stopped"
        return f"<{type(self).__name__} {self._name!r} {self._level.value} {state}>"

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


class PeriodicThreadRegistry:
    """The process-wide set of periodic threads the endpoints report on, by unique name.

    LMCache's registry interface. Queries take a snapshot of the members under the
    registry's lock and read each thread outside it, so a thread's work may use the
    registry freely.
    """

    _instance: ClassVar[PeriodicThreadRegistry | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, PeriodicThread] = {}

    @classmethod
    def get_instance(cls) -> PeriodicThreadRegistry:
        """Return the process-wide registry, creating it on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def reset(cls) -> None:
        """Forget the process-wide registry (mainly for tests): its threads are unregistered,
        not stopped, and the next :meth:`get_instance` returns a new, empty registry."""
        with cls._instance_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None:
            instance.unregister_all()

    def register(self, thread: PeriodicThread) -> None:
        """Add ``thread``, replacing a stopped one of the same name; again is a no-op.

        A running thread keeps its name: two live threads under one name would be ambiguous.
        """
        if not isinstance(thread, PeriodicThread):
            raise TypeError(f"thread must be a PeriodicThread, got {type(thread).__name__}")
        with self._lock:
            existing = self._threads.get(thread.name)
            if existing is thread:
                return
            if existing is not None and existing.is_running:
                raise ValueError("Periodic thread name already in use by a running thread: "
                                 f"{thread.name}")
            self._threads[thread.name] = thread

    def unregister(self, name: str) -> PeriodicThread | None:
        """Remove and return the thread called ``name`` (None if absent); it is not stopped."""
        with self._lock:
            return self._threads.pop(name, None)

    def unregister_all(self) -> None:
        """Remove every thread (none is stopped)."""
        with self._lock:
            self._threads.clear()

    def get(self, name: str) -> PeriodicThread | None:
        """Return the thread called ``name``, or None."""
        with self._lock:
            return self._threads.get(name)

    def get_all(self) -> list[PeriodicThread]:
        """Return the registered threads in the order they were registered."""
        with self._lock:
            return list(self._threads.values())

    def threads(self) -> list[PeriodicThread]:
        """Return the registered threads sorted by name."""
        with self._lock:
            return [self._threads[name] for name in sorted(self._threads)]

    def get_by_level(self, level: ThreadLevel | str) -> list[PeriodicThread]:
        """The registered threads of ``level`` (a ThreadLevel or its name), in registration
        order."""
        wanted = ThreadLevel.parse(level)
        return [t for t in self.get_all() if t.level is wanted]

    def get_running_count(self) -> int:
        """How many registered threads are running."""
        return sum(1 for t in self.get_all() if t.is_running)

    def get_active_count(self) -> int:
        """How many registered threads are active (running and not stalled)."""
        return sum(1 for t in self.get_all() if t.is_active)

    def get_count_by_level(self, level: ThreadLevel | str) -> dict[str, int]:
        """``{"total", "running", "active"}`` counts of the threads of ``level``."""
        return _counts([t.get_status() for t in self.get_by_level(level)])

    def get_summary(self) -> dict[str, Any]:
        """LMCache's summary: ``total_count``, ``running_count``, ``active_count``, ``by_level``
        (every level, empty ones too) and ``threads`` (each thread's :meth:`~PeriodicThread.
        get_status`), all from one status snapshot per thread."""
        statuses = [t.get_status() for t in self.get_all()]
        totals = _counts(statuses)
        return {
            "total_count": totals["total"],
            "running_count": totals["running"],
            "active_count": totals["active"],
            "by_level": {level.value: _counts([s for s in statuses if s["level"] == level.value])
                         for level in ThreadLevel},
            "threads": statuses,
        }

    def __len__(self) -> int:
        with self._lock:
            return len(self._threads)

    def __contains__(self, item: object) -> bool:
        """Accept a name, or a thread object (True only if that very object is registered)."""
        with self._lock:
            if isinstance(item, PeriodicThread):
                return self._threads.get(item.name) is item
            return item in self._threads

    @classmethod
    def _after_fork_in_child(cls) -> None:
        """Replace locks that a thread of the parent may have held at fork time."""
        cls._instance_lock = threading.Lock()
        if cls._instance is not None:
            cls._instance._lock = threading.Lock()


def _counts(statuses: list[dict[str, Any]]) -> dict[str, int]:
    return {"total": len(statuses),
            "running": sum(1 for s in statuses if s["is_running"]),
            "active": sum(1 for s in statuses if s["is_active"])}


def create_periodic_thread(name: str, interval: float, execute_fn: Callable[[], object],
                           level: ThreadLevel | str = ThreadLevel.MEDIUM, init_wait: float = 0.0,
                           auto_register: bool = True) -> PeriodicThread:
    """Create a thread (not started) that runs ``execute_fn`` and, unless ``auto_register`` is
    False, register it."""
    thread = PeriodicThread(name, interval, execute_fn, level=level, init_wait=init_wait)
    if auto_register:
        PeriodicThreadRegistry.get_instance().register(thread)
    return thread


def _after_fork_in_child() -> None:
    """Make a forked child (a gunicorn worker) run the threads its parent ran, on new locks.

    Only the forking thread survives a fork. Runs after ``threading``'s own fork handler.
    """
    global _INSTANCES_LOCK
    _INSTANCES_LOCK = threading.Lock()
    PeriodicThreadRegistry._after_fork_in_child()
    for thread in list(_INSTANCES):
        try:
            thread._after_fork_in_child()
        except Exception:
            logger.exception("Could not restart periodic thread %s after fork", thread.name)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
