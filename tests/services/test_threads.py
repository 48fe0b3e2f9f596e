from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from common_api.services.threads import (
    ThreadDumpService,
    group_threads,
    render_dump,
    render_groups,
)


@pytest.fixture
def parked_thread() -> Iterator[threading.Thread]:
    release = threading.Event()

    def park_here() -> None:
        release.wait(10)

    thread = threading.Thread(target=park_here, name="Parked-Worker-7", daemon=True)
    thread.start()
    yield thread
    release.set()
    thread.join(5)


def test_dump_includes_every_thread_with_its_stack(parked_thread: threading.Thread) -> None:
    dump = ThreadDumpService().dump()
    names = {info.name for info in dump}
    assert {"MainThread", "Parked-Worker-7"} <= names
    parked = next(info for info in dump if info.ident == parked_thread.ident)
    assert parked.frames[-1].function in {"wait", "_wait_for_tstate_lock"} or any(
        frame.function == "park_here" for frame in parked.frames)
    assert parked.daemon is True
    assert parked.native_id == parked_thread.native_id


def test_name_filter_is_case_insensitive_substring(parked_thread: threading.Thread) -> None:
    dump = ThreadDumpService().dump(name="parked-work")
    assert [info.ident for info in dump] == [parked_thread.ident]


def test_ident_filter_is_exact(parked_thread: threading.Thread) -> None:
    assert parked_thread.ident is not None
    dump = ThreadDumpService().dump(ident=parked_thread.ident)
    assert [info.name for info in dump] == ["Parked-Worker-7"]
    other = ThreadDumpService().dump(ident=parked_thread.ident + 1)
    assert all(info.ident == parked_thread.ident + 1 for info in other)


def test_text_form_blocks_and_summary(parked_thread: threading.Thread) -> None:
    dump = ThreadDumpService().dump(name="parked")
    text = render_dump(dump)
    blocks = text.split("\n\n")
    assert blocks[0].startswith("Thread: <Thread(Parked-Worker-7, started daemon ")
    assert blocks[0].splitlines()[1] == "Stack trace:"
    assert 'in park_here' in blocks[0]
    assert blocks[-1] == "=== Thread Summary ===\nTotal threads: 1\n"


def test_empty_dump_still_has_summary() -> None:
    assert render_dump([]) == "=== Thread Summary ===\nTotal threads: 0\n"


def test_deep_stacks_keep_the_innermost_frames() -> None:
    ready, release = threading.Event(), threading.Event()

    def dive(depth: int) -> None:
        if depth:
            dive(depth - 1)
        else:
            ready.set()
            release.wait(10)

    thread = threading.Thread(target=dive, args=(300,), name="Deep-Diver", daemon=True)
    thread.start()
    try:
        assert ready.wait(5)
        (info,) = ThreadDumpService().dump(name="deep-diver")
        assert len(info.frames) == 100
        assert info.frames_omitted > 200
        assert info.frames[-1].function in {"wait", "_wait_for_tstate_lock"} or any(
            frame.function == "dive" for frame in info.frames[-5:])
        assert "outer frames omitted" in render_dump([info])
    finally:
        release.set()
        thread.join(5)


def test_identical_stacks_are_grouped_largest_first() -> None:
    release = threading.Event()
    started = threading.Barrier(5)

    def same_place() -> None:
        started.wait(5)
        release.wait(10)

    def other_place() -> None:
        started.wait(5)
        release.wait(10)

    threads = [threading.Thread(target=same_place, name=f"Twin-{i}", daemon=True)
               for i in range(3)]
    threads.append(threading.Thread(target=other_place, name="Twin-odd", daemon=True))
    for thread in threads:
        thread.start()
    try:
        started.wait(5)
        deadline = time.monotonic() + 5
        while True:  # until every twin is parked in release.wait, not leaving the barrier
            groups = group_threads(ThreadDumpService().dump(name="twin-"))
            if [len(g.threads) for g in groups] == [3, 1] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert [len(g.threads) for g in groups] == [3, 1]
        assert sorted(t.name for t in groups[0].threads) == ["Twin-0", "Twin-1", "Twin-2"]
        text = render_groups(groups)
        assert text.startswith("Threads: 3 (Twin-")
        assert text.endswith("Total threads: 4\nDistinct stacks: 2\n")
    finally:
        release.set()
        for thread in threads:
            thread.join(5)
