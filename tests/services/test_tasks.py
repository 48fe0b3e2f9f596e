"""/tasks' service against real loops running in threads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asyncio_hosts import LoopThread, storage_main

from common_api.services import tasks as tasks_module
from common_api.services.tasks import MAX_CHAIN_FRAMES, TaskDumpService, TaskInfo, name_filter
from common_api.services.tasks_render import group_tasks, render_groups, render_listing


@pytest.fixture
def storage_loop() -> Iterator[LoopThread]:
    host = LoopThread("storage-loop", storage_main).start()
    yield host
    host.close()


def _by_name(service: TaskDumpService) -> dict[str, TaskInfo]:
    return {task.name: task for task in service.dump().tasks()}


def test_every_task_of_a_loop_in_a_thread_with_its_chain(storage_loop: LoopThread) -> None:
    listing = TaskDumpService().dump()
    (loop,) = [loop for loop in listing.loops if loop.thread_name == "storage-loop"]
    assert loop.thread_ident == storage_loop.thread.ident
    names = {task.name for task in loop.tasks}
    assert {"fetch-chunk-42", "ack-waiter", "watcher", "consumer-0", "consumer-1",
            "consumer-2", "main"} <= names
    fetch = next(task for task in loop.tasks if task.name == "fetch-chunk-42")
    assert [frame.function for frame in fetch.chain] == ["fetch_from_remote", "remote_get",
                                                         "sleep"]
    assert fetch.chain[0].file.endswith("asyncio_hosts.py")
    assert fetch.chain[1].code == "await asyncio.sleep(3600)"
    assert fetch.state == "pending"
    assert fetch.awaits is not None and fetch.awaits.kind == "future"
    assert fetch.awaited_by == ("watcher",)


def test_what_each_task_awaits(storage_loop: LoopThread) -> None:
    tasks = _by_name(TaskDumpService())
    watcher = tasks["watcher"]
    assert watcher.awaits is not None
    assert (watcher.awaits.kind, watcher.awaits.task_name) == ("task", "fetch-chunk-42")
    ack = tasks["ack-waiter"]
    assert ack.awaits is not None and ack.awaits.description == "Future (pending)"
    assert [frame.function for frame in tasks["consumer-1"].chain] == ["consume", "get"]


def test_pending_time_is_known_from_the_second_read(storage_loop: LoopThread) -> None:
    service = TaskDumpService()
    assert _by_name(service)["ack-waiter"].pending_for is None
    deadline = time.monotonic() + 5
    while (age := _by_name(service)["ack-waiter"].pending_for) is None or age <= 0:
        assert time.monotonic() < deadline
    assert age > 0


def test_text_names_the_thread_the_chain_and_the_summary(storage_loop: LoopThread) -> None:
    listing = TaskDumpService().dump().filtered(name_filter("FETCH-chunk"))
    text = render_listing(listing)
    assert "run by thread 'storage-loop'" in text
    assert "Task: 'fetch-chunk-42' (pending" in text
    assert "  fetch_from_remote -> remote_get -> sleep\n" in text
    assert "Awaited by: 'watcher'" in text
    assert 'in remote_get\n      await asyncio.sleep(3600)' in text
    assert text.endswith("=== Task Summary ===\nLoops: 1\nTotal tasks: 1\n")


def test_group_puts_same_chains_together_largest_first(storage_loop: LoopThread) -> None:
    listing = TaskDumpService().dump().filtered(name_filter("consumer-"))
    groups = group_tasks(listing.tasks())
    assert [len(group.tasks) for group in groups] == [3]
    assert "Tasks: 3 ('consumer-0', 'consumer-1', 'consumer-2')" in render_groups(groups)


FRESH_PROCESS = """
from common_api.services.tasks import TaskDumpService
from common_api.services.tasks_render import render_listing
print(repr(render_listing(TaskDumpService().dump())))
"""


def test_a_process_without_loops_answers_an_empty_listing() -> None:
    """In a fresh process (this one may hold other tests' loops): no loop, no task, no
    error."""
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr("=== Task Summary ===\nLoops: 0\nTotal tasks: 0\n")


async def _dive(depth: int, ready: threading.Event) -> None:
    if depth:
        await _dive(depth - 1, ready)
    else:
        ready.set()
        await asyncio.sleep(3600)


def test_long_chains_keep_the_innermost_50_frames_and_say_so() -> None:
    async def main(host: LoopThread) -> None:
        await _dive(80, host.ready)

    host = LoopThread("deep-loop", main).start()
    try:
        (deep,) = [task for task in TaskDumpService().dump().tasks() if task.name == "main"]
        assert len(deep.chain) == MAX_CHAIN_FRAMES
        assert deep.frames_omitted == 83 - MAX_CHAIN_FRAMES  # main, 81 dives, sleep
        assert deep.chain[-1].function == "sleep"
        assert "outer frames omitted" in render_listing(TaskDumpService().dump())
    finally:
        host.close()


def test_at_most_max_tasks_are_listed_and_the_cut_is_said(storage_loop: LoopThread,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(tasks_module, "MAX_TASKS", 3)
    listing = TaskDumpService().dump()
    assert listing.total() == 3
    assert listing.omitted >= 5
    assert f"Tasks omitted: {listing.omitted} (at most" in render_listing(listing)


class WatchedLoop(asyncio.SelectorEventLoop):
    """Records every call that would schedule on it made from another thread."""

    foreign_calls: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.foreign_calls = []
        self.owner: int | None = None

    def _note(self, what: str) -> None:
        if self.owner is not None and threading.get_ident() != self.owner:
            self.foreign_calls.append(what)

    def call_soon(self, *args: Any, **kwargs: Any) -> Any:
        self._note("call_soon")
        return super().call_soon(*args, **kwargs)

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
        self._note("call_soon_threadsafe")
        return super().call_soon_threadsafe(*args, **kwargs)

    def call_at(self, *args: Any, **kwargs: Any) -> Any:
        self._note("call_at")
        return super().call_at(*args, **kwargs)

    def create_task(self, *args: Any, **kwargs: Any) -> Any:
        self._note("create_task")
        return super().create_task(*args, **kwargs)


def test_reading_under_churn_never_harms_the_loop() -> None:
    """Tasks created and finished thousands of times a second while a reader lists them:
    no exception in the loop, no call from the reader that schedules on it, the loop
    keeps its pace, every read succeeds."""
    finished = [0]

    async def churn(host: LoopThread) -> None:
        assert isinstance(host.loop, WatchedLoop)
        host.loop.owner = threading.get_ident()

        async def short(i: int) -> None:
            if i % 2:
                await asyncio.sleep(0)
            finished[0] += 1

        host.ready.set()
        i = 0
        while True:
            batch = [asyncio.create_task(short(i + n), name=f"short-{i + n}")
                     for n in range(50)]
            i += 50
            await asyncio.sleep(0)
            await asyncio.gather(*batch)

    host = LoopThread("churn-loop", churn, loop_factory=WatchedLoop).start()
    reads = 0
    try:
        service = TaskDumpService()
        start_count, started = finished[0], time.monotonic()
        while time.monotonic() - started < 1.5:
            listing = service.dump()
            reads += 1
            assert any(loop.thread_name == "churn-loop" for loop in listing.loops)
        rate = (finished[0] - start_count) / (time.monotonic() - started)
        assert isinstance(host.loop, WatchedLoop)
        foreign = list(host.loop.foreign_calls)  # before close() stops it from here
    finally:
        host.close()
    assert foreign == []
    assert host.errors == []
    assert reads > 10
    assert rate > 1000, f"only {rate:.0f} tasks a second finished while read"


def test_another_workers_listing_round_trips_and_a_garbled_one_is_named(
        storage_loop: LoopThread) -> None:
    from common_api.services.tasks import TaskListing
    from common_api.services.tasks_workers import AllWorkerTasks, worker_tasks

    own = TaskDumpService().dump()
    peers = worker_tasks({11: own.to_dict(), 12: {"loops": [{"loop": "x"}]}},
                         {13: "no answer within 2 s"})
    assert [(peer.pid, peer.note) for peer in peers] == [
        (11, ""), (12, "answer unreadable (KeyError)"), (13, "no answer within 2 s")]
    assert peers[0].listing == TaskListing.from_dict(own.to_dict())
    assert peers[0].listing is not None and peers[0].listing.total() == own.total()
    every = AllWorkerTasks(10, own, peers)
    assert every.total() == 2 * own.total()
    assert {task.name.rsplit("@", 1)[1] for task in every.merged()} == {"10", "11"}
