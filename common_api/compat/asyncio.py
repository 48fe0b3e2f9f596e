"""asyncio's private names that ``/tasks`` relies on, checked at import.

``asyncio.all_tasks(loop)`` only answers for the calling thread's loop without an argument
and, with one, iterates the registry through a ``WeakSet`` iterator that runs Python code
while the loop's thread adds and drops tasks. ``/tasks`` reads another thread's loop, so it
copies the registry's underlying set of weak references in one C-level step instead, and
reads what a task waits on and which task a loop is running now:

- the registry of tasks: ``asyncio.tasks._all_tasks`` (3.11) or ``_scheduled_tasks`` and
  ``_eager_tasks`` (3.12, 3.13), a ``WeakSet`` whose ``data`` is a set of weak references;
- ``Task._fut_waiter``: the future a pending task is suspended on;
- ``asyncio.tasks._current_tasks``: the task each running loop is stepping now;
- the frames of ``BaseEventLoop.run_forever``/``_run_once``: a thread inside one runs the
  loop that is their ``self``.

A missing shape turns ``/tasks`` off (``common_api.compat``: one log line, an entry in the
health's ``worker_problems``); the service asks ``TASKS`` before it reads anything.
"""

from __future__ import annotations

import asyncio
import platform
import threading
import weakref
from asyncio import base_events
from asyncio import tasks as asyncio_tasks
from typing import Any

from common_api.compat import require

LIBRARY = "asyncio"
TASKS_FEATURE = "GET /tasks"
# frames of these functions of BaseEventLoop hold the running loop as their `self`
LOOP_FRAME_NAMES = frozenset({"run_forever", "_run_once"})
_COPY_ATTEMPTS = 100


class RegistryBusy(RuntimeError):
    """The task registry changed on every attempt to copy it."""


def _registries() -> tuple[Any, ...]:
    named = ("_scheduled_tasks", "_eager_tasks") if hasattr(asyncio_tasks, "_scheduled_tasks") \
        else ("_all_tasks",)
    return tuple(getattr(asyncio_tasks, name) for name in named)


def _copy(container: Any) -> list[Any]:
    """The members of one registry: a WeakSet's references (dereferenced) or a set's."""
    source: Any = container
    if isinstance(container, weakref.WeakSet):
        source = container.data  # type: ignore[attr-defined]
    for _ in range(_COPY_ATTEMPTS):
        try:
            members = list(source)  # a C-level copy: no Python code runs while it is made
        except RuntimeError:  # changed size mid-copy (only where the GIL is released)
            continue
        if source is container:
            return members
        return [task for task in (ref() for ref in members) if task is not None]
    raise RegistryBusy("asyncio's task registry changed on every one of "
                       f"{_COPY_ATTEMPTS} attempts to copy it")


def registered_tasks() -> list[asyncio.Task[Any]]:
    """Every task asyncio knows of in this process, done or not, any loop, any thread."""
    seen: dict[int, asyncio.Task[Any]] = {}
    for container in _registries():
        for task in _copy(container):
            seen.setdefault(id(task), task)
    return list(seen.values())


def awaited_future(task: asyncio.Task[Any]) -> asyncio.Future[Any] | None:
    """The future ``task`` is suspended on, or None (about to step, or stepping now)."""
    waiter = task._fut_waiter  # type: ignore[attr-defined]
    return waiter if isinstance(waiter, asyncio.Future) else None


def stepping_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """The task whose step ``loop`` is running at this moment, if any."""
    current: dict[Any, Any] = asyncio_tasks._current_tasks  # type: ignore[attr-defined]
    task = current.get(loop)
    return task if isinstance(task, asyncio.Task) else None


def loop_of_frame(code_name: str, frame_locals: Any) -> asyncio.AbstractEventLoop | None:
    """The loop a ``run_forever``/``_run_once`` frame runs (its ``self``), else None."""
    if code_name not in LOOP_FRAME_NAMES:
        return None
    candidate = frame_locals.get("self")
    return candidate if isinstance(candidate, asyncio.AbstractEventLoop) else None


def _loop_methods_present() -> bool:
    return all(callable(getattr(base_events.BaseEventLoop, name, None))
               for name in LOOP_FRAME_NAMES)


def _registries_hold_tasks() -> bool:
    return all(isinstance(getattr(container, "data", None), set)
               if isinstance(container, weakref.WeakSet) else isinstance(container, set)
               for container in _registries())


def _waiter_is_read() -> bool:
    """On a throwaway loop in its own thread (the importing thread may be running one):
    a task awaiting a future is registered, waits on that future, and its loop names the
    task it is stepping."""
    found: list[bool] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        async def waits() -> None:
            await future

        task = loop.create_task(waits())
        try:
            await asyncio.sleep(0)
            found.append(awaited_future(task) is future and task in registered_tasks()
                         and stepping_task(loop) is asyncio.current_task())
        finally:
            future.set_result(None)
            await task

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(probe())
        except Exception:  # a shape that is not there fails the check, whatever the error
            found.append(False)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="common_api-asyncio-check", daemon=True)
    thread.start()
    thread.join(10)
    return found == [True]


TASKS = require(TASKS_FEATURE, LIBRARY, {
    "BaseEventLoop.run_forever and _run_once": _loop_methods_present,
    "asyncio.tasks._all_tasks or _scheduled_tasks/_eager_tasks (WeakSet.data, set)":
        _registries_hold_tasks,
    "asyncio.tasks._current_tasks and Task._fut_waiter": _waiter_is_read,
}, version=f"(Python {platform.python_version()})")
