"""The memory window: what grew, where, and tracemalloc left as it was found."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from common_api.services.memory import MemoryWindow

KEPT: list[bytes] = []


def grow_for_the_memory_test(stop: threading.Event, started: threading.Event) -> None:
    started.set()
    while not stop.wait(0.005):
        KEPT.append(bytes(10_000))  # the site the window must find


@pytest.fixture
def growing() -> Iterator[None]:
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=grow_for_the_memory_test, args=(stop, started),
                              daemon=True)
    thread.start()
    started.wait(5)
    yield
    stop.set()
    thread.join(5)
    KEPT.clear()


def _growth_line() -> int:
    import inspect
    source, first = inspect.getsourcelines(grow_for_the_memory_test)
    return first + next(i for i, line in enumerate(source) if "KEPT.append" in line)


def test_the_site_that_keeps_allocating_tops_the_size_growth(growing: None) -> None:
    report = MemoryWindow().measure(1.0, top=5, group="lineno")
    top = report.by_size[0]
    assert top.frames[-1] == (__file__, _growth_line())
    assert top.size_diff >= 20 * 10_000
    assert top.count_diff > 0
    assert len(report.by_size) <= 5 and len(report.by_count) <= 5
    assert "KEPT" not in report.render()  # sites are file:line, not source
    assert f"{__file__}:{_growth_line()}" in report.render()


def test_the_window_stops_tracing_afterwards() -> None:
    assert not tracemalloc.is_tracing()
    MemoryWindow().measure(0.1, top=3, group="traceback")
    assert not tracemalloc.is_tracing()


def test_a_host_that_already_traces_keeps_tracing_at_its_depth(growing: None) -> None:
    tracemalloc.start(7)
    try:
        report = MemoryWindow().measure(0.5, top=3, group="traceback")
        assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 7
    finally:
        tracemalloc.stop()
    assert report.traced_before
    assert 1 < len(report.by_size[0].frames) <= 7


def test_rss_before_and_after_are_reported() -> None:
    document = MemoryWindow().measure(0.1, top=3, group="lineno").to_dict()
    assert document["rss_before"] > 0 and document["rss_after"] > 0
    assert document["rss_diff"] == document["rss_after"] - document["rss_before"]
