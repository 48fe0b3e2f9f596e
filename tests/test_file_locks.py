from __future__ import annotations

from pathlib import Path

import pytest

from common_api.file_locks import file_lock


def test_a_second_holder_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "one.lock"
    with file_lock(path) as fd:
        assert fd >= 0
        with pytest.raises(BlockingIOError), file_lock(path, blocking=False):
            pass  # a second descriptor is another holder, even in this thread
    with file_lock(path, blocking=False):
        pass  # released


def test_a_reentrant_lock_nests_in_its_thread_and_is_released_by_the_outer_block(
        tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    with file_lock(path, reentrant=True) as outer, file_lock(path, reentrant=True) as inner:
        assert inner == outer
    with file_lock(path, blocking=False):
        pass


def test_shared_holders_coexist_and_keep_out_an_exclusive_one(tmp_path: Path) -> None:
    path = tmp_path / "metrics.lock"
    with (file_lock(path, exclusive=False), file_lock(path, exclusive=False, blocking=False),
          pytest.raises(BlockingIOError), file_lock(path, blocking=False)):
        pass


def test_a_lock_that_cannot_be_opened_raises_what_the_caller_asks(tmp_path: Path) -> None:
    class Gone(Exception):
        pass

    missing = tmp_path / "deleted" / "x.lock"
    with pytest.raises(FileNotFoundError), file_lock(missing):
        pass
    with pytest.raises(Gone), file_lock(missing, on_open_error=lambda error: Gone(error)):
        pass
