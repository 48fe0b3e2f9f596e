"""Sampling CPU profiles of this process: which Python code every thread is running.

A sampler thread wakes ``hz`` times a second and reads ``sys._current_frames()``: one call,
under the GIL, that sees every thread's current Python frame without stopping or tracing
it (no ptrace, no restart, no new privileges). Each sample of each thread becomes a stack,
root first, whose root frame is the thread's name; the sampler never samples itself.

The cost falls on the process only while a window runs, and is bounded by ``hz``: a walk
of each thread's frames per tick, with every code object resolved to a frame-table entry
once per window.
"""

from __future__ import annotations

import linecache
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any, TypeVar

SAMPLER_THREAD_NAME = "common-api-profiler"
MAX_DEPTH = 256
TRUNCATED = "(truncated)"
MAX_STACKS = 100_000     # distinct stacks kept; later new ones count under OTHER_STACKS
OTHER_STACKS = "(other stacks)"
MAX_GIL_SHARE = 0.05     # the sampler holds the GIL at most this share of the time

# The known waits, in one place: a sample whose innermost Python frame is one of these
# functions, or whose innermost frame is executing a line that calls one of these blocking
# calls, is idle (``idle=false`` drops it). C functions have no Python frame of their own,
# so a thread inside ``time.sleep`` shows as the line that called it.
WAIT_FUNCTIONS: frozenset[tuple[str, str]] = frozenset({
    ("threading", "wait"),                     # Condition.wait, Event.wait, Barrier.wait
    ("threading", "_wait_for_tstate_lock"),    # Thread.join
    ("threading", "join"),
    ("selectors", "select"),                   # every selector's select()
    ("socket", "accept"),
    ("socket", "readinto"),                    # SocketIO: file-like socket reads
    ("ssl", "read"),
    ("ssl", "recv"),
    ("ssl", "recv_into"),
    ("queue", "get"),                          # Queue.get (a Condition wait underneath)
    ("subprocess", "wait"),
    ("subprocess", "_wait"),
    ("multiprocessing.connection", "_recv"),
    ("multiprocessing.connection", "poll"),
})
BLOCKING_CALL = re.compile(
    r"\bsleep\(|\bselect\(|\.(poll|accept|recv|recv_into|recvfrom|readinto|acquire|wait"
    r"|waitpid|join)\(|\w*queue\.get\(|\.get\(\)|\.get\((block|timeout)=|\bgetaddrinfo\("
    r"|\bos\.read\(")


@dataclass(frozen=True)
class Frame:
    """One entry of a profile's frame table.

    ``kind`` is ``python`` (``name`` is ``module:function``, ``line`` the function's first
    line), ``thread`` (``name`` is the thread's name) or ``worker`` (``worker <pid>``).
    """

    name: str
    file: str = ""
    line: int = 0
    kind: str = "python"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "line": self.line, "kind": self.kind}


@dataclass
class Profile:
    """Stacks of frame-table indices (root first) with how many samples each got."""

    frames: list[Frame]
    stacks: dict[tuple[int, ...], int]
    duration: float
    hz: int
    ticks: int
    started_at: float
    missing_workers: dict[str, str] = field(default_factory=dict)
    sampler_cpu_seconds: float = 0.0

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    @property
    def rate(self) -> float:
        """Ticks actually taken per second (the requested ``hz`` is an upper bound)."""
        return self.ticks / self.duration if self.duration > 0 else 0.0

    def named_stacks(self) -> list[tuple[tuple[str, ...], int]]:
        """Each stack as frame names, the most sampled first."""
        ordered = sorted(self.stacks.items(), key=lambda item: -item[1])
        return [(tuple(self.frames[i].name for i in stack), count) for stack, count in ordered]

    def summary(self) -> dict[str, Any]:
        return {"duration_seconds": round(self.duration, 6), "hz_requested": self.hz,
                "ticks": self.ticks, "samples": self.samples,
                "rate_achieved_hz": round(self.rate, 3), "started_at": self.started_at,
                "sampler_cpu_seconds": round(self.sampler_cpu_seconds, 6),
                "missing_workers": dict(self.missing_workers)}


def _module_of(frame: FrameType) -> str:
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) else "?"


def _function_of(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)


def name_of_frame(frame: FrameType) -> Frame:
    """The frame-table entry of a Python frame's code (``module:function``, first line)."""
    code = frame.f_code
    return Frame(f"{_module_of(frame)}:{_function_of(code)}", code.co_filename,
                 code.co_firstlineno)


def is_idle_frame(frame: FrameType) -> bool:
    """Whether a thread whose innermost Python frame is ``frame`` is waiting: inside one of
    ``WAIT_FUNCTIONS``, or on a line that calls a blocking call (``BLOCKING_CALL``)."""
    code = frame.f_code
    return (_module_of(frame), code.co_name) in WAIT_FUNCTIONS or bool(
        BLOCKING_CALL.search(linecache.getline(code.co_filename, frame.f_lineno or 0)))


class _FrameTable:
    """Interns frames: one table entry per code object (or thread name) per window."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._by_key: dict[object, int] = {}
        self._by_code: dict[CodeType, int] = {}
        self._idle: dict[tuple[CodeType, int], bool] = {}

    def intern(self, frame: Frame) -> int:
        index = self._by_key.get(frame)
        if index is None:
            index = self._by_key[frame] = len(self.frames)
            self.frames.append(frame)
        return index

    def code_index(self, frame: FrameType) -> int:
        code = frame.f_code
        index = self._by_code.get(code)
        if index is None:
            index = self._by_code[code] = self.intern(name_of_frame(frame))
        return index

    def is_idle(self, frame: FrameType) -> bool:
        key = (frame.f_code, frame.f_lineno or 0)
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = is_idle_frame(frame)
        return idle


class Sampler:
    """One profiling window over this process's threads.

    ``name`` keeps threads whose name contains it (any case); ``drop_idle`` leaves out
    samples whose innermost frame is a known wait. ``stop`` ends the window early.
    """

    def __init__(self, hz: int, name: str | None = None, drop_idle: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hz = hz
        self._needle = name.lower() if name is not None else None
        self._drop_idle = drop_idle
        self._clock = clock
        self._table = _FrameTable()
        self._stacks: dict[tuple[int, ...], int] = {}
        self._thread_roots: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self, seconds: float) -> Profile:
        """Sample for ``seconds`` in a thread of its own, and return what it saw."""
        result: list[Profile | BaseException] = []

        def sample() -> None:
            try:
                result.append(self._sample(seconds))
            except BaseException as exc:  # handed to the caller below
                result.append(exc)

        sampler = threading.Thread(target=sample, name=SAMPLER_THREAD_NAME, daemon=True)
        sampler.start()
        try:
            sampler.join()
        finally:
            self.stop.set()
            sampler.join()
        outcome = result[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _sample(self, seconds: float) -> Profile:
        own = threading.get_ident()
        period = 1.0 / self.hz
        wall = time.time()
        cpu = time.thread_time()
        started = self._clock()
        deadline = started + seconds
        ticks = 0
        next_tick = started
        while True:
            now = self._clock()
            if now >= deadline or self.stop.is_set():
                break
            if now < next_tick:
                if self.stop.wait(min(next_tick, deadline) - now):
                    break
                continue
            tick_cpu = time.thread_time()
            self._take(own)
            ticks += 1
            done = self._clock()
            # a tick that cost much CPU (many threads, deep stacks) spaces out the next ones,
            # so the host's threads keep the GIL at least 1 - MAX_GIL_SHARE of the time; CPU
            # time, not wall time, so that waiting for the GIL is not counted as cost
            cost = time.thread_time() - tick_cpu
            next_tick = max(next_tick + period, done + cost / MAX_GIL_SHARE - cost)
            if next_tick < done:  # fell behind: skip the missed ticks instead of bursting
                next_tick = done + period
        duration = self._clock() - started
        return Profile(self._table.frames, self._stacks, duration, self.hz, ticks, wall,
                       sampler_cpu_seconds=time.thread_time() - cpu)

    def _thread_root(self, name: str) -> int:
        index = self._thread_roots.get(name)
        if index is None:
            index = self._thread_roots[name] = self._table.intern(Frame(name, kind="thread"))
        return index

    def _take(self, own: int) -> None:
        frames = sys._current_frames()
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        table = self._table
        for ident, top in frames.items():
            if ident == own:
                continue
            name = names.get(ident, "<unknown>")
            if self._needle is not None and self._needle not in name.lower():
                continue
            if self._drop_idle and table.is_idle(top):
                continue
            path, cut = walk_stack(top, table.code_index)
            if cut:
                path.append(table.intern(Frame(TRUNCATED, kind="truncated")))
            path.append(self._thread_root(name))
            path.reverse()
            key = tuple(path)
            if key not in self._stacks and len(self._stacks) >= MAX_STACKS:
                key = (path[0], table.intern(Frame(OTHER_STACKS, kind="truncated")))
            self._stacks[key] = self._stacks.get(key, 0) + 1
        del frames


Index = TypeVar("Index")


def walk_stack(top: FrameType, index_of: Callable[[FrameType], Index]
               ) -> tuple[list[Index], bool]:
    """``index_of`` each frame from ``top`` outward, at most ``MAX_DEPTH``; and whether
    frames were left beyond that (the stack is cut: a ``TRUNCATED`` frame goes next)."""
    path: list[Index] = []
    frame: FrameType | None = top
    while frame is not None and len(path) < MAX_DEPTH:
        path.append(index_of(frame))
        frame = frame.f_back
    return path, frame is not None


def merge_profiles(parts: dict[str, Profile], duration: float, hz: int, ticks: int,
                   started_at: float) -> Profile:
    """One profile from several (a worker's each), every stack under a root frame named by
    the part's key (``worker <pid>``)."""
    frames: list[Frame] = []
    index_of: dict[Frame, int] = {}

    def intern(frame: Frame) -> int:
        if frame not in index_of:
            index_of[frame] = len(frames)
            frames.append(frame)
        return index_of[frame]

    stacks: dict[tuple[int, ...], int] = {}
    for label, part in parts.items():
        root = intern(Frame(label, kind="worker"))
        remap = [intern(frame) for frame in part.frames]
        for stack, count in part.stacks.items():
            key = (root, *(remap[i] for i in stack))
            stacks[key] = stacks.get(key, 0) + count
    return Profile(frames, stacks, duration, hz, ticks, started_at)
