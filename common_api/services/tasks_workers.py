"""``/tasks?scope=all``: the answering worker's tasks and every other worker's, asked over
the peer channel (``WorkerRuntime.gather_tasks``); a worker that gave no readable answer
in time is named with the reason, never left out silently."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from common_api.services.tasks import TaskInfo, TaskListing
from common_api.services.tasks_render import render_loops


@dataclass(frozen=True)
class WorkerTasks:
    """Another worker's tasks, or (``listing`` None) why there are none."""

    pid: int
    listing: TaskListing | None
    note: str = ""


def worker_tasks(answers: Mapping[int, Any], missing: Mapping[int, str]) -> list[WorkerTasks]:
    """The other workers' answers read back, and the workers that gave none, by pid."""
    workers = [WorkerTasks(pid, None, why) for pid, why in missing.items()]
    for pid, answer in answers.items():
        try:
            workers.append(WorkerTasks(pid, TaskListing.from_dict(answer)))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            workers.append(WorkerTasks(pid, None,
                                       f"answer unreadable ({type(error).__name__})"))
    return sorted(workers, key=lambda worker: worker.pid)


@dataclass(frozen=True)
class AllWorkerTasks:
    own_pid: int
    own: TaskListing
    peers: list[WorkerTasks] = field(default_factory=list)

    def filtered(self, keep: Callable[[TaskInfo], bool]) -> AllWorkerTasks:
        return replace(self, own=self.own.filtered(keep), peers=[
            replace(peer, listing=peer.listing.filtered(keep))
            if peer.listing is not None else peer for peer in self.peers])

    def listings(self) -> list[tuple[int, TaskListing]]:
        return [(self.own_pid, self.own), *((peer.pid, peer.listing) for peer in self.peers
                                            if peer.listing is not None)]

    def total(self) -> int:
        return sum(listing.total() for _, listing in self.listings())

    def omitted(self) -> int:
        return sum(listing.omitted for _, listing in self.listings())

    def missing(self) -> list[WorkerTasks]:
        return [peer for peer in self.peers if peer.listing is None]

    def merged(self) -> list[TaskInfo]:
        """Every task read, each named ``name@pid`` (to group across workers)."""
        return [replace(task, name=f"{task.name}@{pid}")
                for pid, listing in self.listings() for task in listing.tasks()]


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


def _section(pid: int, role: str, listing: TaskListing | None, note: str) -> str:
    if listing is None:
        return f"=== Worker {pid} ({role}) ===\n(no tasks: {note})"
    counts = f"{_count(len(listing.loops), 'loop')}, {_count(listing.total(), 'task')}"
    if listing.omitted:
        counts += f", {listing.omitted} omitted"
    return "\n\n".join([f"=== Worker {pid} ({role}: {counts}) ===", *render_loops(listing)])


def render_all_worker_tasks(every: AllWorkerTasks) -> str:
    """Text: a section per worker (the answering one first), then the summary over all."""
    sections = [_section(every.own_pid, "answering", every.own, "")]
    sections.extend(_section(peer.pid, "answered" if peer.listing is not None
                             else "no answer", peer.listing, peer.note)
                    for peer in every.peers)
    text = (f"=== Task Summary (all workers) ===\nWorkers: {1 + len(every.peers)}\n"
            f"Total tasks: {every.total()}\n")
    if every.omitted():
        text += f"Tasks omitted: {every.omitted()}\n"
    for peer in every.missing():
        text += f"Missing worker {peer.pid}: {peer.note}\n"
    return "\n\n".join([*sections, text])


def render_all_worker_tasks_json(every: AllWorkerTasks) -> dict[str, Any]:
    workers: list[dict[str, Any]] = [
        {"pid": every.own_pid, "answered": True, **every.own.to_dict()}]
    for peer in every.peers:
        if peer.listing is not None:
            workers.append({"pid": peer.pid, "answered": True, **peer.listing.to_dict()})
        else:
            workers.append({"pid": peer.pid, "answered": False, "note": peer.note})
    return {"workers": workers, "total": every.total()}
