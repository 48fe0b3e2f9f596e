"""What every asyncio task of this process is waiting on, found without the host's help.

A loop is found from the threads' stacks: a thread inside ``run_forever`` runs the loop
that is that frame's ``self``. Its tasks come from asyncio's registry, copied in one step
(``common_api.compat.asyncio``); nothing here calls into a loop or schedules on it, and a
task that finishes while it is read is simply read as far as it got. The coroutine chain of
a task is the ``cr_await`` walk from its coroutine down to the innermost frame it is
suspended in.
"""

from __future__ import annotations

import asyncio
import linecache
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from common_api.compat import asyncio as asyncio_compat
from common_api.compat import is_off
from common_api.errors import Unavailable
from common_api.services.threads import Frame

MAX_TASKS = 10_000
MAX_CHAIN_FRAMES = 50
# how far a cr_await walk goes before it stops counting (chains are never cyclic)
_MAX_WALK = 10_000
NOT_RUNNING = ("not running in any thread found (stopped, or a loop written in C "
               "such as uvloop, whose frames are not Python's)")


@dataclass(frozen=True)
class Awaited:
    """What a pending task is suspended on: another task, or a future."""

    kind: str  # "task" or "future"
    description: str
    task_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description,
                "task": self.task_name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Awaited:
        return cls(str(data["kind"]), str(data["description"]),
                   None if data.get("task") is None else str(data["task"]))


@dataclass(slots=True)  # not frozen: a frozen init costs a fifth of a 1,000-task read
class TaskInfo:
    """One task not done; ``chain`` runs from its coroutine (outermost) to the innermost
    frame it is suspended in. ``pending_for`` is a lower bound: seconds since a read of
    ``/tasks`` in this process first saw it (None at the first sighting). Never changed
    after the read that made it."""

    name: str
    state: str
    chain: tuple[Frame, ...]
    frames_omitted: int = 0
    awaits: Awaited | None = None
    awaited_by: tuple[str, ...] = ()
    pending_for: float | None = None
    chain_end: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "chain": [frame.to_dict() for frame in self.chain],
            "frames_omitted": self.frames_omitted,
            "chain_end": self.chain_end or None,
            "awaits": self.awaits.to_dict() if self.awaits is not None else None,
            "awaited_by": list(self.awaited_by),
            "pending_for_seconds": None if self.pending_for is None
            else round(self.pending_for, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        """The task as another worker sent it (``to_dict``); KeyError/TypeError/ValueError
        if it is not that shape."""
        awaits, age = data["awaits"], data["pending_for_seconds"]
        return cls(
            name=str(data["name"]), state=str(data["state"]),
            chain=tuple(Frame(str(f["file"]), int(f["line"]), str(f["function"]),
                              str(f["code"])) for f in data["chain"]),
            frames_omitted=int(data["frames_omitted"]),
            awaits=None if awaits is None else Awaited.from_dict(awaits),
            awaited_by=tuple(str(name) for name in data["awaited_by"]),
            pending_for=None if age is None else float(age),
            chain_end=str(data.get("chain_end") or ""))


@dataclass(frozen=True)
class LoopTasks:
    """The tasks of one loop and the thread running it (None: not found running)."""

    loop: str
    thread_name: str | None
    thread_ident: int | None
    tasks: tuple[TaskInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"loop": self.loop, "thread": self.thread_name,
                "thread_ident": self.thread_ident, "running": self.thread_ident is not None,
                "total": len(self.tasks), "tasks": [task.to_dict() for task in self.tasks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopTasks:
        ident = data["thread_ident"]
        return cls(str(data["loop"]), None if data["thread"] is None else str(data["thread"]),
                   None if ident is None else int(ident),
                   tuple(TaskInfo.from_dict(task) for task in data["tasks"]))


@dataclass(frozen=True)
class TaskListing:
    """Every loop's tasks; ``omitted`` tasks were left out past ``MAX_TASKS``."""

    loops: tuple[LoopTasks, ...]
    omitted: int = 0

    def total(self) -> int:
        return sum(len(loop.tasks) for loop in self.loops)

    def filtered(self, keep: Callable[[TaskInfo], bool]) -> TaskListing:
        """The tasks ``keep`` keeps, in the loops that still have one."""
        loops = (replace(loop, tasks=tuple(task for task in loop.tasks if keep(task)))
                 for loop in self.loops)
        return replace(self, loops=tuple(loop for loop in loops if loop.tasks))

    def tasks(self) -> list[TaskInfo]:
        return [task for loop in self.loops for task in loop.tasks]

    def to_dict(self) -> dict[str, Any]:
        return {"loops": [loop.to_dict() for loop in self.loops], "total": self.total(),
                "tasks_omitted": self.omitted, "max_tasks": MAX_TASKS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskListing:
        return cls(tuple(LoopTasks.from_dict(loop) for loop in data["loops"]),
                   int(data["tasks_omitted"]))


def name_filter(name: str | None) -> Callable[[TaskInfo], bool]:
    """Keeps the tasks whose name contains ``name`` (any case); everything when None."""
    needle = name.lower() if name is not None else None
    return lambda task: needle is None or needle in task.name.lower()


_LINKS: dict[type, tuple[str, str]] = {
    types.CoroutineType: ("cr_frame", "cr_await"),
    types.GeneratorType: ("gi_frame", "gi_yieldfrom"),
    types.AsyncGeneratorType: ("ag_frame", "ag_await"),
}


class _ChainReader:
    """Walks coroutine chains for one read; a place (code, line) many tasks share is
    looked up once."""

    def __init__(self) -> None:
        self._places: dict[tuple[types.CodeType, int], Frame] = {}

    def _place(self, code: types.CodeType, line: int) -> Frame:
        key = (code, line)
        frame = self._places.get(key)
        if frame is None:
            frame = Frame(code.co_filename, line, code.co_name,
                          linecache.getline(code.co_filename, line).strip())
            self._places[key] = frame
        return frame

    def chain(self, coro: Any) -> tuple[tuple[Frame, ...], int, str]:
        """The innermost ``MAX_CHAIN_FRAMES`` frames of the walk, how many outer ones were
        left out, and the type of what the innermost frame awaits when it is not Python
        code."""
        frames: list[Frame] = []
        link, end = coro, ""
        for _ in range(_MAX_WALK):
            if link is None:
                break
            names = _LINKS.get(type(link))
            if names is None:
                # a future's own awaiting (``awaits`` names the future) is not worth a line
                kind = type(link).__qualname__
                end = "" if kind == "FutureIter" else kind
                break
            frame = getattr(link, names[0])
            if frame is None:  # finished while read
                break
            frames.append(self._place(frame.f_code, frame.f_lineno or 0))
            link = getattr(link, names[1])
        kept = frames[-MAX_CHAIN_FRAMES:]
        return tuple(kept), len(frames) - len(kept), end


def _describe(future: Any, futures: dict[tuple[type, str], Awaited]) -> Awaited:
    """What a task waits on; ``futures`` keeps one answer per kind of plain future."""
    if isinstance(future, asyncio.Task):
        name = future.get_name()
        return Awaited("task", f"Task {name!r}", name)
    state = "cancelled" if future.cancelled() else "done" if future.done() else "pending"
    key = (type(future), state)
    known = futures.get(key)
    if known is None:
        known = futures[key] = Awaited("future", f"{type(future).__qualname__} ({state})")
    return known


class _Sightings:
    """When a read first saw each task (by identity, through weak references that hold
    nothing alive); tasks absent from a read are forgotten."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[int, tuple[weakref.ref[Any], float]] = {}

    def ages(self, tasks: list[Any], now: float) -> list[float | None]:
        with self._lock:
            known = self._first
            fresh: dict[int, tuple[weakref.ref[Any], float]] = {}
            ages: list[float | None] = []
            for task in tasks:
                entry = known.get(id(task))
                if entry is not None and entry[0]() is task:
                    fresh[id(task)] = entry
                    ages.append(now - entry[1])
                else:
                    fresh[id(task)] = (weakref.ref(task), now)
                    ages.append(None)
            self._first = fresh
            return ages


def _loops_by_thread() -> dict[int, tuple[Any, int]]:
    """Each running loop (by id): the loop and the ident of the thread running it."""
    names = asyncio_compat.LOOP_FRAME_NAMES
    found: dict[int, tuple[Any, int]] = {}
    for ident, frame in sys._current_frames().items():
        walking: types.FrameType | None = frame
        while walking is not None:
            if walking.f_code.co_name in names:
                loop = asyncio_compat.loop_of_frame(walking.f_code.co_name, walking.f_locals)
                if loop is not None:
                    found.setdefault(id(loop), (loop, ident))
                    break
            walking = walking.f_back
    return found


def _loop_label(loop: Any) -> str:
    return f"{type(loop).__qualname__} at {id(loop):#x}"


class TaskDumpService:
    """Reads the tasks of every loop of this process; never touches the loops."""

    def __init__(self) -> None:
        self._sightings = _Sightings()

    def dump(self) -> TaskListing:
        off = is_off(asyncio_compat.TASKS_FEATURE)
        if off is not None:
            raise Unavailable(off.message().removeprefix("common_api: "))
        running = _loops_by_thread()
        try:
            registered = asyncio_compat.registered_tasks()
        except asyncio_compat.RegistryBusy as exc:
            raise Unavailable(str(exc)) from None
        pending = [task for task in registered if not task.done()]
        omitted = max(0, len(pending) - MAX_TASKS)
        pending = pending[:MAX_TASKS]
        ages = self._sightings.ages(pending, time.monotonic())
        return TaskListing(self._group(pending, ages, running), omitted)

    def _group(self, pending: list[Any], ages: list[float | None],
               running: dict[int, tuple[Any, int]]) -> tuple[LoopTasks, ...]:
        threads = {thread.ident: thread.name for thread in threading.enumerate()}
        names = [task.get_name() for task in pending]
        waiters = [asyncio_compat.awaited_future(task) for task in pending]
        awaited_by: dict[int, list[str]] = {}
        for name, waiter in zip(names, waiters, strict=True):
            if waiter is not None:
                awaited_by.setdefault(id(waiter), []).append(name)
        stepping = {id(loop): asyncio_compat.stepping_task(loop) for loop, _ in running.values()}
        read_chain = _ChainReader().chain
        futures: dict[tuple[type, str], Awaited] = {}
        by_loop: dict[int, list[TaskInfo]] = {}
        loops: dict[int, Any] = {}
        for task, name, waiter, age in zip(pending, names, waiters, ages, strict=True):
            loop = task.get_loop()
            loops[id(loop)] = loop
            chain, omitted, end = read_chain(task.get_coro())
            if stepping.get(id(loop)) is task:
                state = "running"
            elif task.cancelling():
                state = "cancelling"
            else:
                state = "pending" if waiter is not None else "scheduled"
            by_loop.setdefault(id(loop), []).append(TaskInfo(
                name=name, state=state, chain=chain, frames_omitted=omitted,
                awaits=_describe(waiter, futures) if waiter is not None else None,
                awaited_by=tuple(awaited_by.get(id(task), ())), pending_for=age,
                chain_end=end))
        for loop_id, (loop, _) in running.items():
            loops.setdefault(loop_id, loop)
        ordered = sorted(loops, key=lambda key: (key not in running,
                                                 threads.get(running[key][1], "")
                                                 if key in running else ""))
        result = []
        for key in ordered:
            ident = running[key][1] if key in running else None
            name = threads.get(ident, "<unknown>") if ident is not None else None
            members = sorted(by_loop.get(key, []), key=lambda info: info.name)
            result.append(LoopTasks(_loop_label(loops[key]), name, ident, tuple(members)))
        return tuple(result)
