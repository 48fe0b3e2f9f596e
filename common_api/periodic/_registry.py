"""The process-wide registry of periodic threads, and the function form's factory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from common_api.periodic._levels import ThreadLevel
from common_api.periodic._thread import PeriodicThread


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
