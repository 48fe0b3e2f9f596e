"""A level set reaches every live worker over the peer channel and waits for each to
apply it (``common_api.workers.shared_levels``), without gunicorn; the levels file only
serves workers started later, so its faults never stop a set.

The "other worker" is a real child process answering ``levels`` requests on its peer
channel socket; the faults are real: a deleted directory, a full tmpfs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import delete_tree, freeze, wait_until

from common_api.peer_channel import ChannelAddress, Replies, ask_all
from common_api.services.loglevels import LevelChange, LogLevelService, Revert
from common_api.workers.peer_link import STOPPED
from common_api.workers.shared_levels import SharedLogLevels
from common_api.workers.state_dir import StateDir

LOGGER = "units.level_sync"

# A worker: answers level requests on its channel; prints, on request, its logger's level.
PEER_SCRIPT = textwrap.dedent("""
    import logging, os, sys
    from common_api.peer_channel import ChannelAddress, PeerServer
    from common_api.workers.shared_levels import LEVELS, SharedLogLevels
    from common_api.workers.state_dir import StateDir

    levels = SharedLogLevels(StateDir(sys.argv[1]).create())
    levels.listen()
    server = PeerServer(ChannelAddress(sys.argv[3], os.getpid()), {LEVELS: levels.receive},
                        lambda credentials: credentials.uid == os.geteuid())
    server.start()
    print("listening", flush=True)
    for _ in sys.stdin:
        print(logging.getLevelName(logging.getLogger(sys.argv[2]).level), flush=True)
""")


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state").create()


@pytest.fixture
def identity(tmp_path: Path) -> str:
    return f"test-levels-{os.getpid()}-{tmp_path.name}"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(LOGGER)
    yield log
    log.setLevel(logging.NOTSET)


@pytest.fixture
def peer(state: StateDir, identity: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", PEER_SCRIPT, str(state.root), LOGGER,
                             identity], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


def setter(state: StateDir, identity: str, *pids: int, timeout: float = 1.0
           ) -> SharedLogLevels:
    """A setter whose siblings are ``pids`` (the peer_link's job in a server)."""
    def ask(kind: str, body: object, seconds: float) -> Replies:
        return ask_all({pid: ChannelAddress(identity, pid) for pid in pids}, kind, body,
                       seconds)

    return SharedLogLevels(state, ask, answer_timeout=timeout)


def peer_level(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("?\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def test_set_waits_until_the_other_worker_applies_it(
        state: StateDir, identity: str, logger: logging.Logger,
        peer: subprocess.Popen[str]) -> None:
    levels = setter(state, identity, peer.pid)
    assert levels.publish(LOGGER, "DEBUG", None).late == {}
    assert logger.level == logging.DEBUG
    assert peer_level(peer) == "DEBUG"  # already, not eventually: nothing polls in the peer
    assert levels.publish(LOGGER, "ERROR", None).late == {}
    assert peer_level(peer) == "ERROR"


def test_a_stopped_worker_is_named_and_applies_the_level_when_it_runs_again(
        state: StateDir, identity: str, logger: logging.Logger,
        peer: subprocess.Popen[str]) -> None:
    levels = setter(state, identity, peer.pid, timeout=0.3)
    freeze(peer.pid)
    try:
        started = time.monotonic()
        late = levels.publish(LOGGER, "INFO", None).late
        assert list(late) == [peer.pid] and "no answer within 0.3 s" in late[peer.pid]
        assert time.monotonic() - started < 5
        assert logger.level == logging.INFO
    finally:
        os.kill(peer.pid, signal.SIGCONT)
    wait_until(lambda: peer_level(peer) == "INFO", 5, message="the resumed worker's level")


def test_set_on_a_deleted_state_dir_reaches_every_worker_and_says_it_was_not_saved(
        state: StateDir, identity: str, logger: logging.Logger,
        peer: subprocess.Popen[str]) -> None:
    levels = setter(state, identity, peer.pid)
    levels.publish(LOGGER, "WARNING", None)
    delete_tree(state.root)
    published = levels.publish(LOGGER, "CRITICAL", None)
    assert published.late == {}
    assert published.not_saved is not None and "No such file" in published.not_saved
    assert logger.level == logging.CRITICAL
    assert peer_level(peer) == "CRITICAL"
    state.create()  # the fault cleared: the next set is saved again, and still reaches it
    published = levels.publish(LOGGER, "ERROR", None)
    assert published == type(published)({}, None)
    assert peer_level(peer) == "ERROR"


@pytest.fixture
def full_state(tmp_path: Path) -> Iterator[StateDir]:
    """A state directory on a tiny tmpfs, filled up after the directory was set up."""
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        state = StateDir(root).create()
        with contextlib.suppress(OSError), (root / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield state
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_set_on_a_full_state_dir_applies_and_names_what_was_not_saved(
        full_state: StateDir, logger: logging.Logger) -> None:
    logger.setLevel(logging.WARNING)
    service = LogLevelService(SharedLogLevels(full_state))
    change = service.set_level(LOGGER, "DEBUG")
    assert logger.level == logging.DEBUG
    first, second = change.render().split("\n")
    assert first == f"Set {LOGGER} level to DEBUG (including all handlers)"
    assert second.startswith("Not saved for workers started later: ")
    assert "No space left on device" in second
    assert "No space left" in change.to_dict()["not_saved_for_later_workers"]
    timed = service.set_level(LOGGER, "INFO", duration="60")
    assert logger.level == logging.INFO and timed.revert is not None
    assert not list(full_state.root.glob(".loglevels.json.*"))  # no partial file left


def test_a_due_revert_is_carried_out_by_each_worker_at_its_time(
        state: StateDir, identity: str, logger: logging.Logger,
        peer: subprocess.Popen[str]) -> None:
    levels = setter(state, identity, peer.pid)
    levels.publish(LOGGER, "DEBUG", Revert("ERROR", time.time() + 0.3))
    assert peer_level(peer) == "DEBUG"
    # no background tick in either process: only the peer's timer can carry it out
    wait_until(lambda: peer_level(peer) == "ERROR", 5, message="the peer's revert")
    assert levels.pending() == {}
    assert levels.levels() == {LOGGER: "ERROR"}


def test_change_text_keeps_the_seed_line_and_names_unacknowledged_workers() -> None:
    change = LevelChange("lmcache.v1.cache_engine", "DEBUG", None, (4242,))
    first, note = change.render().split("\n")
    assert first == "Set lmcache.v1.cache_engine level to DEBUG (including all handlers)"
    assert "worker 4242" in note and "as soon as it runs again" in note
    assert change.to_dict()["unacknowledged_workers"] == [4242]
    two = LevelChange("x", "INFO", None, (11, 12), {11: STOPPED})
    note = two.render().split("\n")[1]
    assert note.startswith(f"Not yet applied by workers 11 ({STOPPED}), 12 (")
    assert two.to_dict()["unacknowledged_reasons"]["11"] == STOPPED
    plain = LevelChange("x", "INFO", None)
    assert plain.render() == "Set x level to INFO (including all handlers)"
    assert plain.to_dict()["unacknowledged_workers"] == []


@pytest.mark.parametrize("body", [None, [], "DEBUG", {"levels": {LOGGER: 10}},
                                  {"levels": [], "reverts": {}},
                                  {"generation": "9", "levels": {}, "reverts": {}},
                                  {"levels": {}, "reverts": {LOGGER: {"at": 1}}}])
def test_a_levels_request_that_is_not_a_levels_state_changes_nothing(
        state: StateDir, logger: logging.Logger, body: object) -> None:
    logger.setLevel(logging.WARNING)
    levels = SharedLogLevels(state)
    with pytest.raises(ValueError, match="not a levels state"):
        levels.receive(body)
    assert logger.level == logging.WARNING and levels.levels() == {}
