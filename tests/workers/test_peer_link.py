"""The server-wide turn a worker takes for a window (common_api.workers.peer_link.hold)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common_api.errors import Unavailable
from common_api.workers import peer_link
from common_api.workers.peer_link import PeerLink


def test_a_turn_needs_no_state_directory_where_abstract_names_exist(tmp_path: Path) -> None:
    if not peer_link.ABSTRACT:
        pytest.skip("no abstract Unix socket names on this platform")
    root = tmp_path / "state"
    root.mkdir()
    os.chmod(root, 0o500)  # as a read-only directory would be, for a non-root worker too
    try:
        link, sibling = PeerLink(root), PeerLink(root)
        with link.hold("profile"), pytest.raises(BlockingIOError), sibling.hold("profile"):
            pass
        with sibling.hold("profile"):
            pass
        assert list(root.iterdir()) == []  # nothing written
    finally:
        os.chmod(root, 0o700)


def test_without_abstract_names_the_turn_is_a_lock_file_and_its_faults_are_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_link, "ABSTRACT", False)
    link, sibling = PeerLink(tmp_path), PeerLink(tmp_path)
    with link.hold("profile"), pytest.raises(BlockingIOError), sibling.hold("profile"):
        pass
    with sibling.hold("profile"):
        pass
    gone = PeerLink(tmp_path / "deleted")
    with pytest.raises(Unavailable, match="server-wide profile lock"), gone.hold("profile"):
        pass
