"""The text and grouped forms of ``/tasks`` (``common_api.services.tasks`` reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common_api.services.tasks import MAX_TASKS, NOT_RUNNING, LoopTasks, TaskInfo, TaskListing
from common_api.services.threads import Frame


def _chain_lines(info: TaskInfo) -> list[str]:
    lines = ["  Coroutine chain (outermost first):"]
    if info.frames_omitted:
        lines.append(f"    ... {info.frames_omitted} outer frames omitted")
    for frame in info.chain:
        lines.append(f'    File "{frame.file}", line {frame.line}, in {frame.function}')
        if frame.code:
            lines.append(f"      {frame.code}")
    if not info.chain:
        lines.append("    (no Python frame: finished while read, or not started)")
    if info.chain_end:
        lines.append(f"    -> awaiting a {info.chain_end}")
    return lines


def _summary(info: TaskInfo) -> str:
    path = " -> ".join(frame.function for frame in info.chain)
    return f"  {path}" if path else "  (no coroutine frames)"


def render_task(info: TaskInfo) -> str:
    head = f"Task: {info.name!r} ({info.state}"
    if info.pending_for is not None:
        head += f", seen pending for at least {info.pending_for:.1f} s"
    lines = [head + ")", _summary(info)]
    if info.awaits is not None:
        lines.append(f"  Awaits: {info.awaits.description}")
    if info.awaited_by:
        lines.append(f"  Awaited by: {', '.join(repr(name) for name in info.awaited_by)}")
    lines.extend(_chain_lines(info))
    return "\n".join(lines)


def loop_heading(loop: LoopTasks) -> str:
    if loop.thread_ident is None:
        where = NOT_RUNNING
    else:
        where = f"run by thread {loop.thread_name!r} (ident {loop.thread_ident})"
    count = "1 task" if len(loop.tasks) == 1 else f"{len(loop.tasks)} tasks"
    return f"--- Loop {loop.loop}, {where}: {count} ---"


def render_loops(listing: TaskListing) -> list[str]:
    blocks = []
    for loop in listing.loops:
        blocks.append(loop_heading(loop))
        blocks.extend(render_task(info) for info in loop.tasks)
    return blocks


def summary(listing: TaskListing, loops: int | None = None) -> str:
    text = (f"=== Task Summary ===\nLoops: {len(listing.loops) if loops is None else loops}\n"
            f"Total tasks: {listing.total()}\n")
    if listing.omitted:
        text += f"Tasks omitted: {listing.omitted} (at most {MAX_TASKS} are listed)\n"
    return text


def render_listing(listing: TaskListing) -> str:
    """Text: each loop's heading then its tasks, blank lines between, then the summary."""
    return "\n\n".join([*render_loops(listing), summary(listing)])


@dataclass(frozen=True)
class TaskGroup:
    """Tasks suspended at the same place: the same chain, frame for frame."""

    tasks: tuple[TaskInfo, ...]

    @property
    def chain(self) -> tuple[Frame, ...]:
        return self.tasks[0].chain

    def to_dict(self) -> dict[str, Any]:
        first = self.tasks[0]
        return {"count": len(self.tasks), "names": [task.name for task in self.tasks],
                "states": sorted({task.state for task in self.tasks}),
                "chain": [frame.to_dict() for frame in self.chain],
                "frames_omitted": first.frames_omitted, "chain_end": first.chain_end or None}


def group_tasks(tasks: list[TaskInfo]) -> list[TaskGroup]:
    """Identical chains together, the largest group first (then by first name)."""
    groups: dict[tuple[Any, ...], list[TaskInfo]] = {}
    for info in tasks:
        key = (tuple((f.file, f.line, f.function) for f in info.chain), info.chain_end)
        groups.setdefault(key, []).append(info)
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0].name))
    return [TaskGroup(tuple(members)) for members in ordered]


def render_groups(groups: list[TaskGroup], omitted: int = 0) -> str:
    blocks = []
    for group in groups:
        first = group.tasks[0]
        names = ", ".join(repr(task.name) for task in group.tasks)
        blocks.append("\n".join([f"Tasks: {len(group.tasks)} ({names})", _summary(first),
                                 *_chain_lines(first)]))
    total = sum(len(group.tasks) for group in groups)
    text = (f"=== Task Summary ===\nTotal tasks: {total}\nDistinct chains: {len(groups)}\n")
    if omitted:
        text += f"Tasks omitted: {omitted} (at most {MAX_TASKS} are listed)\n"
    return "\n\n".join([*blocks, text])
