"""The parameters of /profile and /memory, their limits, and one window at a time."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from common_api.errors import Busy, InvalidInput, Unavailable
from common_api.peer_channel import Claims
from common_api.services.exclusive import ExclusiveWindow
from common_api.services.profiler import MemoryRequest, Profiler, ProfileRequest

KEY = "COMMON_API_PROFILE_MAX_SECONDS"


def test_defaults_are_ten_seconds_at_a_hundred_hertz_with_idle_samples() -> None:
    assert ProfileRequest.parse({}, 60, KEY) == ProfileRequest(10.0, 100, None, False, False)
    assert MemoryRequest.parse({}, 60, KEY) == MemoryRequest(10.0, 25, "lineno", False)
    assert ProfileRequest.parse({}, 2, KEY).seconds == 2


@pytest.mark.parametrize(("args", "named"), [
    ({"seconds": "abc"}, "seconds"), ({"seconds": "0"}, "seconds"),
    ({"seconds": "-1"}, "seconds"), ({"seconds": "nan"}, "seconds"),
    ({"seconds": "inf"}, "seconds"), ({"hz": "0"}, "hz"), ({"hz": "1001"}, "hz"),
    ({"hz": "1.5"}, "hz"), ({"hz": "x"}, "hz"), ({"idle": "maybe"}, "idle"),
    ({"scope": "every"}, "scope"),
])
def test_a_bad_profile_parameter_is_refused_naming_it(args: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput, match=rf"\b{named}\b"):
        ProfileRequest.parse(args, 60, KEY)


@pytest.mark.parametrize(("args", "named"), [
    ({"top": "0"}, "top"), ({"top": "1001"}, "top"), ({"group": "module"}, "group"),
    ({"seconds": "-2"}, "seconds"), ({"scope": "x"}, "scope"),
])
def test_a_bad_memory_parameter_is_refused_naming_it(args: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput, match=rf"\b{named}\b"):
        MemoryRequest.parse(args, 60, KEY)


def test_a_window_over_the_limit_names_the_limit_and_its_key() -> None:
    with pytest.raises(InvalidInput) as refused:
        ProfileRequest.parse({"seconds": "61"}, 60, KEY)
    assert str(refused.value) == ("Invalid seconds: 61 is over the limit of 60 seconds "
                                  "(COMMON_API_PROFILE_MAX_SECONDS)")


def test_a_second_window_while_one_runs_is_busy_and_the_first_is_unharmed() -> None:
    window = ExclusiveWindow("profile")
    with window.hold(), pytest.raises(Busy, match="Another profile is running"), window.hold():
        pass
    with window.hold():  # free again afterwards
        pass


def test_two_workers_sharing_a_server_lock_take_turns(tmp_path: Path) -> None:
    # two windows on one server lock are two workers': the second is refused while held
    claims = Claims(lambda: f"test-profiler-{os.getpid()}-{tmp_path.name}")
    first = ExclusiveWindow("profile", lambda: claims.hold("profile"))
    second = ExclusiveWindow("profile", lambda: claims.hold("profile"))
    with first.hold(), pytest.raises(Busy), second.hold():
        pass
    with second.hold():
        pass


def test_a_server_lock_that_cannot_be_taken_is_unavailable_not_a_crash() -> None:
    def unusable() -> contextlib.AbstractContextManager[object]:
        raise Unavailable("Cannot take the server-wide profile lock: gone")

    window = ExclusiveWindow("profile", unusable)
    with pytest.raises(Unavailable, match="profile lock"), window.hold():
        pass
    assert not window._local.locked()  # this process's turn is given back


def test_profile_and_memory_windows_do_not_block_each_other() -> None:
    profiler = Profiler(60, KEY)
    started, release = threading.Event(), threading.Event()

    def long_memory_window() -> None:
        with profiler._memory.hold():
            started.set()
            release.wait(10)

    holder = threading.Thread(target=long_memory_window)
    holder.start()
    try:
        assert started.wait(5)
        profile = profiler.profile(ProfileRequest(0.1, 50, None, False, False))
        assert profile.ticks > 0
        with pytest.raises(Busy, match="memory window"):
            profiler.memory(MemoryRequest(0.1, 5, "lineno", False))
    finally:
        release.set()
        holder.join()
