"""The scope=all exchange without a server: what it carries, and faults of its directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common_api.errors import Unavailable
from common_api.services.memory import MemoryReport, MemoryWindow
from common_api.services.profiler import MemoryRequest, ProfileRequest
from common_api.services.profiling import Sampler
from common_api.workers.peer_profiles import PeerWindows, profile_from_dict, profile_to_dict
from common_api.workers.state_dir import StateDir


def test_a_profile_survives_the_trip_through_its_file() -> None:
    profile = Sampler(100).run(0.2)
    again = profile_from_dict(profile_to_dict(profile))
    assert again.named_stacks() == profile.named_stacks()
    assert (again.ticks, again.duration, again.hz) == (profile.ticks, profile.duration, 100)
    assert [f.to_dict() for f in again.frames] == [f.to_dict() for f in profile.frames]


def test_a_memory_report_survives_the_trip_through_its_file() -> None:
    report = MemoryWindow().measure(0.1, top=5, group="traceback")
    assert MemoryReport.from_dict(report.to_dict()).to_dict() == report.to_dict()
    assert MemoryReport.from_dict(report.to_dict()).by_size == report.by_size


def test_without_other_workers_only_this_one_answers(tmp_path: Path) -> None:
    windows = PeerWindows(StateDir(tmp_path).create(), lambda: [])
    request = ProfileRequest(0.1, 50, None, False, True)
    parts, missing = windows.profiles(request, lambda: Sampler(50).run(0.1))
    assert list(parts) == [os.getpid()] and missing == {}
    assert list((tmp_path / "windows").glob("*.json")) == []  # nothing left behind


def test_a_worker_that_never_answers_is_named_after_the_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from common_api.workers import peer_profiles

    monkeypatch.setattr(peer_profiles, "ANSWER_GRACE", 0.2)
    silent = os.getppid()  # alive, and never reads the request
    windows = PeerWindows(StateDir(tmp_path).create(), lambda: [silent])
    reports, missing = windows.memory(MemoryRequest(0.1, 3, "lineno", True),
                                      lambda: MemoryWindow().measure(0.1, 3, "lineno"))
    assert list(reports) == [os.getpid()]
    assert missing == {silent: "no answer within the deadline (stopped or too busy)"}


def test_an_unusable_windows_directory_is_503_with_the_reason(tmp_path: Path) -> None:
    state = StateDir(tmp_path).create()
    (tmp_path / "windows").write_text("not a directory")
    windows = PeerWindows(state, lambda: [])
    with pytest.raises(Unavailable, match="Cannot ask the other workers"):
        windows.profiles(ProfileRequest(0.1, 50, None, False, True),
                         lambda: Sampler(50).run(0.1))


def test_polling_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    PeerWindows(StateDir(tmp_path / "gone"), lambda: []).poll()


def test_an_unreadable_answer_makes_its_worker_missing_not_the_request_fail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from common_api.workers import peer_profiles

    monkeypatch.setattr(peer_profiles, "ANSWER_GRACE", 0.5)
    peer = os.getppid()
    state = StateDir(tmp_path).create()
    windows = PeerWindows(state, lambda: [peer])

    def own_part() -> object:
        # the peer "answers" with something that is JSON but not a profile
        (request,) = (tmp_path / "windows").glob("*.json")
        (tmp_path / "windows" / f"{request.stem}.{peer}.json").write_text('{"frames": 3}')
        return Sampler(50).run(0.05)

    parts, missing = windows.profiles(ProfileRequest(0.05, 50, None, False, True),
                                      own_part)  # type: ignore[arg-type]
    assert list(parts) == [os.getpid()]
    assert missing == {peer: "its answer could not be read"}
