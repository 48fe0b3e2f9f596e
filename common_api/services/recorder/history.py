"""The flight recorder's history: every thread's stack, sampled a few times a second, kept
for a bounded time in bounded memory, and read back as a :class:`Profile` of any recent span.

Memory is bounded by an estimate kept as samples come in (``MEMORY_BUDGET``): the frame and
stack tables may use half of it and are compacted to what the kept samples still use when
they reach it (at most every 10 s; new stacks count under ``(other stacks)`` while they
cannot be); the samples use the rest, four bytes each plus a tick's overhead, and the
oldest go first when they reach it, so a process with very many threads keeps a shorter
span (the answer says which).
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType, FrameType

from common_api.services.sampling import (
    OTHER_STACKS,
    TRUNCATED,
    Frame,
    Profile,
    is_idle_frame,
    name_of_frame,
    walk_stack,
)

#: What the estimate is held to: 7 MiB, so that with what it does not count (the source
#: lines ``linecache`` keeps for the idle check, the estimate's error) a worker's history
#: stays under 8 MiB (``benchmarks/bench_flight_recorder.py`` measures it).
MEMORY_BUDGET = 7 * 1024 * 1024
# estimated bytes per entry: a tick (its array and deque slot), a stack (tuple, dict and
# list entries), a frame (the Frame, its name, dict entries)
TICK_BYTES = 260
SAMPLE_BYTES = 4
STACK_BYTES = 200
FRAME_BYTES = 400
COMPACT_EVERY = 10.0  # seconds at least between two compactions of the tables


@dataclass(frozen=True, slots=True)
class Tick:
    """One sampling of every thread: when (monotonic and wall clock), and each thread's
    stack id shifted left once, its low bit set when the thread was waiting."""

    mono: float
    wall: float
    samples: array[int]


@dataclass(frozen=True)
class Span:
    """What a read of the history covered."""

    seconds: float
    ticks: int
    started_at: float


class SampleHistory:
    """Samples of the last ``seconds`` seconds (``hz`` ticks a second), thread-safe."""

    def __init__(self, seconds: float, hz: int, budget: int = MEMORY_BUDGET) -> None:
        self.seconds = seconds
        self.hz = hz
        self.budget = budget
        self._lock = threading.Lock()
        self._ticks: deque[Tick] = deque()
        self._tick_bytes = 0
        self._compact_after = -math.inf
        self._reset_tables()

    def _reset_tables(self) -> None:
        self._frames: list[Frame] = []
        self._frame_index: dict[Frame, int] = {}
        self._by_code: dict[CodeType, int] = {}
        self._stacks: list[tuple[int, ...]] = []
        self._stack_index: dict[tuple[int, ...], int] = {}
        self._idle: dict[tuple[CodeType, int], bool] = {}
        self._table_bytes = 0
        # what a sample is counted under when the tables are full and it needs a new entry
        self._other_threads = self._intern(Frame("(other threads)", kind="thread"))
        self._other_stacks = self._intern(Frame(OTHER_STACKS, kind="truncated"))

    @property
    def memory_bytes(self) -> int:
        """The estimate the budget is held to."""
        return self._tick_bytes + self._table_bytes

    def _room(self) -> bool:
        """Whether the tables may grow: they use under half the budget."""
        return self._table_bytes <= self.budget // 2

    def _intern(self, frame: Frame) -> int:
        index = self._frame_index.get(frame)
        if index is None:
            index = self._frame_index[frame] = len(self._frames)
            self._frames.append(frame)
            self._table_bytes += FRAME_BYTES + len(frame.name) + len(frame.file)
        return index

    def _frame_id(self, frame: Frame) -> int | None:
        index = self._frame_index.get(frame)
        return index if index is not None or not self._room() else self._intern(frame)

    def _code_index(self, frame: FrameType) -> int | None:
        index = self._by_code.get(frame.f_code)
        if index is None and self._room():
            index = self._by_code[frame.f_code] = self._intern(name_of_frame(frame))
        return index

    def _stack_id(self, path: tuple[int, ...]) -> int:
        index = self._stack_index.get(path)
        if index is None:
            if not self._room():
                return self._stack_id_of_overflow(path[0])
            index = self._add_stack(path)
        return index

    def _stack_id_of_overflow(self, root: int) -> int:
        """Tables full: the sample counts under its thread (when known) and other stacks."""
        path = (root, self._other_stacks)
        index = self._stack_index.get(path)
        return index if index is not None else self._add_stack(path)

    def _add_stack(self, path: tuple[int, ...]) -> int:
        index = self._stack_index[path] = len(self._stacks)
        self._stacks.append(path)
        self._table_bytes += STACK_BYTES + 8 * len(path)
        return index

    def _is_idle(self, frame: FrameType) -> bool:
        key = (frame.f_code, frame.f_lineno or 0)
        idle = self._idle.get(key)
        if idle is None:
            idle = is_idle_frame(frame)
            if self._room():
                self._idle[key] = idle
                self._table_bytes += STACK_BYTES
        return idle

    def record(self, frames: Mapping[int, FrameType], names: Mapping[int, str], skip: int,
               mono: float, wall: float) -> None:
        """Add one tick: the stack of every thread in ``frames`` but ``skip``."""
        with self._lock:
            if not self._room() and mono >= self._compact_after:
                # between ticks, when no index is held across it; rarely, as it reads
                # every kept sample
                self._compact()
                self._compact_after = mono + COMPACT_EVERY
            samples = array("I")
            for ident, top in frames.items():
                if ident == skip:
                    continue
                root = self._frame_id(Frame(names.get(ident, "<unknown>"), kind="thread"))
                path, cut = walk_stack(top, self._code_index)
                if cut:
                    path.append(self._frame_id(Frame(TRUNCATED, kind="truncated")))
                if root is None or None in path:
                    stack = self._stack_id_of_overflow(root if root is not None
                                                       else self._other_threads)
                else:
                    path.append(root)
                    path.reverse()
                    stack = self._stack_id(tuple(i for i in path if i is not None))
                samples.append(stack << 1 | self._is_idle(top))
            self._ticks.append(Tick(mono, wall, samples))
            self._tick_bytes += TICK_BYTES + SAMPLE_BYTES * len(samples)
            self._evict(mono)

    def _evict(self, now: float) -> None:
        ticks = self._ticks
        while ticks and (now - ticks[0].mono > self.seconds
                         or self._tick_bytes > self.budget - self.budget // 2):
            dropped = ticks.popleft()
            self._tick_bytes -= TICK_BYTES + SAMPLE_BYTES * len(dropped.samples)

    def _compact(self) -> None:
        """Keep only the frames and stacks the kept samples use."""
        stacks, frames = self._stacks, self._frames
        used = sorted({sample >> 1 for tick in self._ticks for sample in tick.samples})
        self._reset_tables()
        remap: dict[int, int] = {}
        for old in used:
            path = tuple(self._intern(frames[i]) for i in stacks[old])
            index = self._stack_index.get(path)
            remap[old] = index if index is not None else self._add_stack(path)
        for tick in self._ticks:
            for position, sample in enumerate(tick.samples):
                tick.samples[position] = remap[sample >> 1] << 1 | sample & 1

    def profile(self, last: float, now: float, wall: float, name: str | None = None,
                drop_idle: bool = False) -> tuple[Profile, Span]:
        """The samples of the last ``last`` seconds before ``now`` (monotonic; ``wall`` is
        the same moment by the wall clock), of threads whose name contains ``name`` (any
        case), without the waiting ones when ``drop_idle``."""
        needle = name.lower() if name is not None else None
        with self._lock:
            counts: dict[int, int] = {}
            ticks = 0
            first: Tick | None = None
            for tick in reversed(self._ticks):
                if now - tick.mono > last:
                    break
                first = tick
                ticks += 1
                for sample in tick.samples:
                    counts[sample] = counts.get(sample, 0) + 1
            frames = list(self._frames)
            stacks: dict[tuple[int, ...], int] = {}
            for sample, count in counts.items():
                if drop_idle and sample & 1:
                    continue
                path = self._stacks[sample >> 1]
                if needle is not None and needle not in frames[path[0]].name.lower():
                    continue
                stacks[path] = stacks.get(path, 0) + count
        seconds = min(last, now - first.mono + 1.0 / self.hz) if first is not None else 0.0
        started = wall - seconds
        return (Profile(frames, stacks, seconds, self.hz, ticks, started),
                Span(seconds, ticks, started))


def thread_names() -> dict[int, str]:
    return {thread.ident: thread.name for thread in threading.enumerate()
            if thread.ident is not None}


def current_frames() -> dict[int, FrameType]:
    return sys._current_frames()
