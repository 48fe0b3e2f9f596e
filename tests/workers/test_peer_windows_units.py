"""The scope=all exchange without a server: what it carries over the peer channel, and
what a worker refuses to run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common_api.peer_channel import ChannelAddress, FanOut, PeerServer, Replies
from common_api.services.memory import MemoryReport, MemoryWindow
from common_api.services.profiler import MemoryRequest, ProfileRequest
from common_api.services.sampling import Sampler
from common_api.workers import peer_profiles
from common_api.workers.peer_profiles import (
    WINDOW,
    PeerWindows,
    profile_from_dict,
    profile_to_dict,
)


def test_a_profile_survives_the_trip_over_the_channel() -> None:
    profile = Sampler(100).run(0.2)
    again = profile_from_dict(profile_to_dict(profile))
    assert again.named_stacks() == profile.named_stacks()
    assert (again.ticks, again.duration, again.hz) == (profile.ticks, profile.duration, 100)
    assert [f.to_dict() for f in again.frames] == [f.to_dict() for f in profile.frames]


def test_a_memory_report_survives_the_trip_over_the_channel() -> None:
    report = MemoryWindow().measure(0.1, top=5, group="traceback")
    assert MemoryReport.from_dict(report.to_dict()).to_dict() == report.to_dict()
    assert MemoryReport.from_dict(report.to_dict()).by_size == report.by_size


def test_without_other_workers_only_this_one_answers() -> None:
    windows = PeerWindows(lambda kind, body, timeout: Replies)
    request = ProfileRequest(0.1, 50, None, False, True)
    parts, missing = windows.profiles(request, lambda: Sampler(50).run(0.1))
    assert list(parts) == [os.getpid()] and missing == {}


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[tuple[PeerServer, ChannelAddress]]:
    """A real peer channel in this process, answering window requests (the asker asks it
    under another pid key, as it would a sibling)."""
    address = ChannelAddress(f"test-windows-{os.getpid()}-{tmp_path.name}", os.getpid())
    server = PeerServer(address, {}, lambda credentials: credentials.uid == os.geteuid())
    server.start()
    try:
        yield server, address
    finally:
        server.close()


SIBLING = 1  # the key the asker files this process's answer under


def asking(address: ChannelAddress) -> Callable[[str, object, float], Callable[[], Replies]]:
    def begin(kind: str, body: object, timeout: float) -> Callable[[], Replies]:
        return FanOut({SIBLING: address}, kind, body, timeout).wait
    return begin


def test_a_worker_runs_the_same_window_and_answers_over_the_channel(
        channel: tuple[PeerServer, ChannelAddress]) -> None:
    server, address = channel
    answering = PeerWindows(asking(address))
    server.add_handler(WINDOW, PeerWindows(asking(address)).answer)
    started = time.monotonic()
    own = MemoryWindow().measure(0.01, 3, "lineno")
    reports, missing = answering.memory(MemoryRequest(0.3, 3, "lineno", True), lambda: own)
    assert missing == {}
    assert reports[os.getpid()] is own
    # the sibling's part came back whole over the channel, for the window asked
    assert isinstance(reports[SIBLING], MemoryReport)
    assert reports[SIBLING].seconds == pytest.approx(0.3, abs=0.1)
    assert time.monotonic() - started < 0.3 + peer_profiles.ANSWER_GRACE


def test_a_worker_that_never_answers_is_named_after_the_deadline(
        channel: tuple[PeerServer, ChannelAddress], monkeypatch: pytest.MonkeyPatch) -> None:
    server, address = channel
    monkeypatch.setattr(peer_profiles, "ANSWER_GRACE", 0.2)
    release = threading.Event()
    server.add_handler(WINDOW, lambda body: release.wait(10))
    try:
        windows = PeerWindows(asking(address))
        _, missing = windows.memory(MemoryRequest(0.1, 3, "lineno", True),
                                          lambda: MemoryWindow().measure(0.1, 3, "lineno"))
    finally:
        release.set()
    assert list(missing) == [SIBLING]
    assert "no answer within" in missing[SIBLING]


@pytest.mark.parametrize("body", [None, [], {"kind": "profile"}, {"kind": "rm -rf", "params": {},
                                  "start": 0, "end": 1},
                                  {"kind": "memory", "params": {}, "start": 0, "end": 1e12}])
def test_a_request_that_is_not_a_window_is_refused_without_running_anything(
        body: object) -> None:
    windows = PeerWindows(lambda kind, b, timeout: Replies)
    started = time.monotonic()
    with pytest.raises((ValueError, KeyError, TypeError)):
        windows.answer(body)
    assert time.monotonic() - started < 0.5
