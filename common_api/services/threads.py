"""Thread dumps: every thread's identity and stack, as text or data, of this process and
(``AllWorkers``, filled by ``common_api.workers.dumps``) of every worker of the server."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    code: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function,
                "code": self.code}


@dataclass(frozen=True)
class ThreadInfo:
    """One thread at the moment of the dump; ``frames`` run from outermost to innermost."""

    name: str
    ident: int
    native_id: int | None
    daemon: bool | None
    description: str
    frames: tuple[Frame, ...]
    frames_omitted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ident": self.ident,
            "native_id": self.native_id,
            "daemon": self.daemon,
            "frames": [frame.to_dict() for frame in self.frames],
            "frames_omitted": self.frames_omitted,
        }


MAX_FRAMES = 100


def _frames(frame: FrameType | None) -> tuple[tuple[Frame, ...], int]:
    """The innermost MAX_FRAMES frames, outermost first, and how many were left out."""
    if frame is None:
        return (), 0
    summaries = traceback.extract_stack(frame)
    kept = summaries[-MAX_FRAMES:]
    return tuple(
        Frame(summary.filename, summary.lineno or 0, summary.name, (summary.line or "").strip())
        for summary in kept
    ), len(summaries) - len(kept)


class ThreadDumpService:
    """Captures the threads of this process, optionally filtered.

    ``name`` keeps threads whose name contains it (any case); ``ident`` keeps the thread
    with exactly that identifier. Threads started outside the ``threading`` module appear
    with the name ``<unknown>``.
    """

    def dump(self, name: str | None = None, ident: int | None = None) -> list[ThreadInfo]:
        frames_by_ident = sys._current_frames()
        known = {thread.ident: thread for thread in threading.enumerate()}
        idents = sorted(set(frames_by_ident) | {i for i in known if i is not None})
        needle = name.lower() if name is not None else None
        infos = []
        for thread_ident in idents:
            thread = known.get(thread_ident)
            thread_name = thread.name if thread is not None else "<unknown>"
            if ident is not None and thread_ident != ident:
                continue
            if needle is not None and needle not in thread_name.lower():
                continue
            frames, omitted = _frames(frames_by_ident.get(thread_ident))
            infos.append(ThreadInfo(
                name=thread_name,
                ident=thread_ident,
                native_id=thread.native_id if thread is not None else None,
                daemon=thread.daemon if thread is not None else None,
                description=repr(thread) if thread is not None
                else f"<unknown thread ident={thread_ident}>",
                frames=frames,
                frames_omitted=omitted,
            ))
        return infos


def _stack_block(heading: str, info: ThreadInfo) -> str:
    lines = [heading, "Stack trace:"]
    if info.frames_omitted:
        lines.append(f"  ... {info.frames_omitted} outer frames omitted")
    for frame in info.frames:
        lines.append(f'  File "{frame.file}", line {frame.line}, in {frame.function}')
        if frame.code:
            lines.append(f"    {frame.code}")
    return "\n".join(lines)


def render_threads(threads: list[ThreadInfo]) -> list[str]:
    """One text block per thread: ``Thread: <repr>``, ``Stack trace:``, the frames."""
    return [_stack_block(f"Thread: {info.description}", info) for info in threads]


def select_threads(threads: list[ThreadInfo], name: str | None = None,
                   ident: int | None = None) -> list[ThreadInfo]:
    """The threads whose name contains ``name`` (any case) and whose ident is ``ident``."""
    needle = name.lower() if name is not None else None
    return [info for info in threads
            if (ident is None or info.ident == ident)
            and (needle is None or needle in info.name.lower())]


def render_dump(threads: list[ThreadInfo]) -> str:
    """The text form: one block per thread, blank lines between, then the summary."""
    summary = f"=== Thread Summary ===\nTotal threads: {len(threads)}\n"
    return "\n\n".join([*render_threads(threads), summary])


@dataclass(frozen=True)
class ThreadGroup:
    """Threads whose stacks are the same, frame for frame (file, line, function)."""

    threads: tuple[ThreadInfo, ...]

    @property
    def frames(self) -> tuple[Frame, ...]:
        return self.threads[0].frames

    def to_dict(self) -> dict[str, Any]:
        return {"count": len(self.threads), "names": [t.name for t in self.threads],
                "idents": [t.ident for t in self.threads],
                "frames": [frame.to_dict() for frame in self.frames],
                "frames_omitted": self.threads[0].frames_omitted}


def group_threads(threads: list[ThreadInfo]) -> list[ThreadGroup]:
    """Identical stacks together, the largest group first (then by first name)."""
    groups: dict[tuple[tuple[str, int, str], ...], list[ThreadInfo]] = {}
    for info in threads:
        key = tuple((f.file, f.line, f.function) for f in info.frames)
        groups.setdefault(key, []).append(info)
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0].name))
    return [ThreadGroup(tuple(members)) for members in ordered]


def render_groups(groups: list[ThreadGroup]) -> str:
    """Text form of a grouped dump: one block per distinct stack, then the summary."""
    blocks = [
        _stack_block(f"Threads: {len(group.threads)} "
                     f"({', '.join(t.name for t in group.threads)})", group.threads[0])
        for group in groups
    ]
    total = sum(len(group.threads) for group in groups)
    summary = (f"=== Thread Summary ===\nTotal threads: {total}\n"
               f"Distinct stacks: {len(groups)}\n")
    return "\n\n".join([*blocks, summary])


PYTHON, FAULTHANDLER, STOPPED, UNANSWERED = "python", "faulthandler", "stopped", "unanswered"


@dataclass(frozen=True)
class PeerDump:
    """Another worker's threads at the moment of the call.

    ``source`` says how they were read: ``python`` (``threads`` is the whole dump, as the
    worker's own ``/threads`` gives it), ``faulthandler`` (``text`` is its C-level dump;
    ``threads`` parsed from it, without source lines or daemon flags), ``stopped`` or
    ``unanswered`` (no stacks; ``note`` says why). ``total`` is the worker's true thread
    count (from ``/proc`` where faulthandler's 100-thread cap or a stopped worker leaves
    no full list); None when unknown.
    """

    pid: int
    source: str
    threads: tuple[ThreadInfo, ...] = ()
    total: int | None = None
    text: str | None = None
    note: str = ""


@dataclass(frozen=True)
class AllWorkers:
    """``/threads?scope=all``: the answering worker's threads and every other worker's."""

    own_pid: int
    own: list[ThreadInfo]
    peers: list[PeerDump] = field(default_factory=list)

    def filtered(self, select: Callable[[list[ThreadInfo]], list[ThreadInfo]]) -> AllWorkers:
        """``select`` applied to this worker and every worker dumped under the GIL (a
        faulthandler dump is kept whole)."""
        return replace(self, own=select(self.own), peers=[
            replace(dump, threads=tuple(select(list(dump.threads))),
                    total=len(select(list(dump.threads))))
            if dump.source == PYTHON else dump for dump in self.peers])

    def total(self) -> int:
        return len(self.own) + sum(dump.total or 0 for dump in self.peers)

    def merged(self) -> list[ThreadInfo]:
        """Every thread read, each named ``name@pid`` (to group across workers)."""
        threads = [replace(info, name=f"{info.name}@{self.own_pid}") for info in self.own]
        for dump in self.peers:
            threads.extend(replace(info, name=f"{info.name}@{dump.pid}")
                           for info in dump.threads)
        return threads


def _peer_section(dump: PeerDump) -> str:
    heading = f"=== Worker {dump.pid} ({dump.source}) ==="
    if dump.source == PYTHON:
        return "\n\n".join([heading, *render_threads(list(dump.threads))])
    lines = [heading]
    if dump.note:
        lines.append(f"({dump.note})")
    if dump.text:
        lines.append(dump.text.rstrip())
    return "\n".join(lines)


def render_all_workers(dump: AllWorkers) -> str:
    """Text: this worker's blocks, then each other worker's, then the summary over all."""
    sections = ["\n\n".join([f"=== Worker {dump.own_pid} (answering) ===",
                              *render_threads(dump.own)])]
    sections.extend(_peer_section(peer) for peer in dump.peers)
    summary = (f"=== Thread Summary ===\nWorkers: {1 + len(dump.peers)}\n"
               f"Total threads: {dump.total()}\n")
    return "\n\n".join([*sections, summary])


def render_all_workers_json(dump: AllWorkers) -> dict[str, Any]:
    workers: list[dict[str, Any]] = [
        {"pid": dump.own_pid, "source": PYTHON, "total": len(dump.own),
         "threads": [info.to_dict() for info in dump.own]}]
    for peer in dump.peers:
        entry: dict[str, Any] = {"pid": peer.pid, "source": peer.source, "total": peer.total}
        if peer.source == PYTHON:
            entry["threads"] = [info.to_dict() for info in peer.threads]
        else:
            entry["dump"] = peer.text
            entry["note"] = peer.note
        workers.append(entry)
    return {"workers": workers, "total": dump.total()}
