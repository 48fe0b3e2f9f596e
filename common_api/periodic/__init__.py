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

import os

from common_api.periodic import _registry, _thread
from common_api.periodic._levels import ThreadLevel
from common_api.periodic._registry import PeriodicThreadRegistry, create_periodic_thread
from common_api.periodic._summary import IrrecoverableException, ThreadRunSummary
from common_api.periodic._thread import PeriodicThread

__all__ = ["IrrecoverableException", "PeriodicThread", "PeriodicThreadRegistry", "ThreadLevel",
           "ThreadRunSummary", "create_periodic_thread"]


def _after_fork_in_child() -> None:
    """Make a forked child (a gunicorn worker) run the threads its parent ran, on new locks.

    Only the forking thread survives a fork. Runs after ``threading``'s own fork handler.
    """
    _registry.PeriodicThreadRegistry._after_fork_in_child()
    _thread._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
