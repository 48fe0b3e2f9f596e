"""The sampler: what it sees of this process's threads, and what it leaves out."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from common_api.services import sampling
from common_api.services.profile_formats import render_collapsed
from common_api.services.sampling import (
    MAX_DEPTH,
    SAMPLER_THREAD_NAME,
    TRUNCATED,
    Profile,
    Sampler,
    merge_profiles,
)


def spin_for_the_profile_test(stop: threading.Event) -> None:
    total = 0
    while not stop.is_set():
        for i in range(1000):
            total += i * i


@contextmanager
def background(name: str, target: Callable[[threading.Event], None]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def thread_lines(profile: Profile, thread: str) -> dict[str, int]:
    """Folded lines of one thread (without its root frame) and their counts."""
    lines = {}
    for line in render_collapsed(profile).splitlines():
        stack, _, count = line.rpartition(" ")
        root, _, rest = stack.partition(";")
        if root == thread:
            lines[rest] = int(count)
    return lines


def test_a_spinning_thread_has_most_of_its_samples_in_its_function() -> None:
    with background("spinner", spin_for_the_profile_test):
        profile = Sampler(100).run(2.0)
    lines = thread_lines(profile, "spinner")
    total = sum(lines.values())
    inside = sum(count for stack, count in lines.items()
                 if stack.split(";")[-1] == f"{__name__}:spin_for_the_profile_test")
    assert total >= 50, lines
    assert inside >= 0.8 * total, lines


def test_the_achieved_rate_and_sample_count_are_reported() -> None:
    profile = Sampler(50).run(0.5)
    assert profile.ticks > 0
    assert 0 < profile.rate <= 50 * 1.2
    assert profile.duration >= 0.5
    assert profile.samples == sum(profile.stacks.values()) > 0


def test_the_sampler_never_samples_itself() -> None:
    profile = Sampler(200).run(0.3)
    assert all(SAMPLER_THREAD_NAME not in names[0] for names, _ in profile.named_stacks())
    # the thread that asked (this one) is sampled, waiting for the sampler
    assert any(names[0] == threading.current_thread().name for names, _ in
               profile.named_stacks())


def test_name_keeps_only_threads_whose_name_contains_it() -> None:
    with background("Spinner-A", spin_for_the_profile_test), \
            background("other-worker", spin_for_the_profile_test):
        profile = Sampler(100, name="spinner").run(0.5)
    roots = {names[0] for names, _ in profile.named_stacks()}
    assert roots == {"Spinner-A"}


def _sleeper(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.01)


def _event_waiter(stop: threading.Event) -> None:
    stop.wait()


def _queue_reader(stop: threading.Event) -> None:
    inbox: queue.Queue[int] = queue.Queue()
    while not stop.is_set():
        with suppress(queue.Empty):
            inbox.get(timeout=0.05)


def test_idle_false_drops_the_samples_of_waiting_threads() -> None:
    with background("sleeper", _sleeper), background("waiter", _event_waiter), \
            background("reader", _queue_reader), \
            background("spinner", spin_for_the_profile_test):
        everything = Sampler(100).run(0.6)
        busy_only = Sampler(100, drop_idle=True).run(0.6)
    seen = {names[0] for names, _ in everything.named_stacks()}
    assert {"sleeper", "waiter", "reader", "spinner"} <= seen
    kept = {names[0]: count for names, count in busy_only.named_stacks()}
    assert "spinner" in kept
    assert not {"sleeper", "waiter", "reader"} & set(kept), kept


def _recurse(depth: int, stop: threading.Event) -> None:
    if depth:
        _recurse(depth - 1, stop)
    else:
        stop.wait()


def test_a_deep_stack_keeps_its_innermost_frames_and_says_it_was_truncated() -> None:
    assert sys.getrecursionlimit() > MAX_DEPTH + 100
    with background("deep", lambda stop: _recurse(MAX_DEPTH + 50, stop)):
        profile = Sampler(50, name="deep").run(0.3)
    (names, _), *_ = profile.named_stacks()
    assert names[0] == "deep" and names[1] == TRUNCATED
    assert len(names) == MAX_DEPTH + 2
    assert names[-1] == "threading:Event.wait" or names[-1].startswith("threading:")


def test_merged_profiles_put_each_part_under_its_worker() -> None:
    one = Sampler(100).run(0.2)
    two = Sampler(100).run(0.2)
    merged = merge_profiles({"worker 1": one, "worker 2": two}, 0.2, 100, one.ticks, 0.0)
    roots = {names[0] for names, _ in merged.named_stacks()}
    assert roots == {"worker 1", "worker 2"}
    assert merged.samples == one.samples + two.samples
    assert {names[1:] for names, _ in merged.named_stacks() if names[0] == "worker 1"} == \
        {names for names, _ in one.named_stacks()}


def test_distinct_stacks_beyond_the_cap_are_counted_together(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "MAX_STACKS", 1)
    with background("spinner", spin_for_the_profile_test):
        profile = Sampler(100).run(0.5)
    named = dict(profile.named_stacks())
    assert len(named) <= 1 + len({names[0] for names in named})
    assert any(names[-1] == sampling.OTHER_STACKS for names in named)
    assert sum(named.values()) == profile.samples


def test_slow_ticks_space_out_so_the_sampler_keeps_to_its_share_of_the_gil(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = Sampler._take

    def slow_take(self: Sampler, own: int) -> None:
        original(self, own)
        busy_until = time.perf_counter() + 0.01  # a 10 ms tick, holding the GIL
        while time.perf_counter() < busy_until:
            pass

    monkeypatch.setattr(Sampler, "_take", slow_take)
    profile = Sampler(100).run(1.0)
    # unthrottled, 100 ticks of 10 ms would want the whole second; the sampler keeps to its
    # share of CPU (one tick's cost of slack), whatever this machine's load makes a tick cost
    assert 1 <= profile.ticks < 50
    assert profile.sampler_cpu_seconds <= sampling.MAX_GIL_SHARE * profile.duration + 0.012
