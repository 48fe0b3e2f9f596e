"""A level set is all or nothing, and waits for the other workers' acknowledgement
(``common_api.workers.shared_levels`` and ``level_sync``), without gunicorn.

The "other worker" is a real child process listening on the same state directory; the
faults are real: a deleted directory, a full tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import delete_tree, freeze, wait_until

from common_api.errors import Unavailable
from common_api.services.loglevels import LevelChange, LogLevelService, Revert
from common_api.workers.level_sync import STOPPED, LevelSync
from common_api.workers.shared_levels import SharedLogLevels
from common_api.workers.state_dir import StateDir

LOGGER = "units.level_sync"

# A worker: listens on the state directory and prints, on request, its logger's level.
PEER_SCRIPT = textwrap.dedent("""
    import logging, sys
    from common_api.workers.shared_levels import SharedLogLevels
    from common_api.workers.state_dir import StateDir

    levels = SharedLogLevels(StateDir(sys.argv[1]).create())
    levels.listen()
    print("listening", flush=True)
    for _ in sys.stdin:
        print(logging.getLevelName(logging.getLogger(sys.argv[2]).level), flush=True)
""")


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state").create()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(LOGGER)
    yield log
    log.setLevel(logging.NOTSET)


@pytest.fixture
def peer(state: StateDir) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", PEER_SCRIPT, str(state.root), LOGGER],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


def peer_level(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("?\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def test_set_waits_until_the_other_worker_applies_it(state: StateDir, logger: logging.Logger,
                                                     peer: subprocess.Popen[str]) -> None:
    levels = SharedLogLevels(state)
    assert levels.publish(LOGGER, "DEBUG", None) == {}
    assert logger.level == logging.DEBUG
    assert peer_level(peer) == "DEBUG"  # already, not eventually: nothing polls in the peer
    assert levels.publish(LOGGER, "ERROR", None) == {}
    assert peer_level(peer) == "ERROR"


def test_a_stopped_worker_is_named_and_applies_the_level_when_it_runs_again(
        state: StateDir, logger: logging.Logger, peer: subprocess.Popen[str]) -> None:
    levels = SharedLogLevels(state)
    levels.sync_channel.ack_timeout = 0.3
    freeze(peer.pid)
    try:
        started = time.monotonic()
        assert levels.publish(LOGGER, "INFO", None) == {peer.pid: STOPPED}
        assert time.monotonic() - started < 5
        assert logger.level == logging.INFO
    finally:
        os.kill(peer.pid, signal.SIGCONT)

    def acknowledged() -> bool:
        return levels.sync_channel.peers()[peer.pid].generation > 0

    wait_until(acknowledged, 5, message="the resumed worker's acknowledgement")
    assert peer_level(peer) == "INFO"


def test_set_on_a_deleted_state_dir_is_unavailable_and_applied_nowhere(
        state: StateDir, logger: logging.Logger, peer: subprocess.Popen[str]) -> None:
    levels = SharedLogLevels(state)
    levels.publish(LOGGER, "WARNING", None)
    delete_tree(state.root)
    # all or nothing: a 503 that changed nobody, or (the peer's listener made the directory
    # again first, as it does within a couple of seconds) a set that reaches the peer too
    try:
        levels.publish(LOGGER, "CRITICAL", None)
    except Unavailable as exc:
        assert re.search(r"not changed in any worker.*No such file", str(exc)), str(exc)
        assert logger.level == logging.WARNING
        assert peer_level(peer) == "WARNING"
    else:
        assert logger.level == logging.CRITICAL
        wait_until(lambda: peer_level(peer) == "CRITICAL", 10,
                   message="the peer applying the set made through the recreated directory")


def test_a_worker_registers_again_when_the_state_dir_is_recreated(
        state: StateDir, logger: logging.Logger, peer: subprocess.Popen[str]) -> None:
    levels = SharedLogLevels(state)
    levels.publish(LOGGER, "WARNING", None)
    delete_tree(state.root)
    state.create()  # the fault cleared: the directory is back, empty
    wait_until(lambda: peer.pid in levels.sync_channel.peers(), 10,
               message="the peer's ack back in the recreated directory")
    assert levels.publish(LOGGER, "ERROR", None) == {}
    assert peer_level(peer) == "ERROR"  # acknowledged before the set returned


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


def test_set_on_a_full_state_dir_is_unavailable_and_applies_nothing(
        full_state: StateDir, logger: logging.Logger) -> None:
    logger.setLevel(logging.WARNING)
    service = LogLevelService(SharedLogLevels(full_state))
    with pytest.raises(Unavailable, match="No space left on device"):
        service.set_level(LOGGER, "DEBUG")
    with pytest.raises(Unavailable, match="No space left on device"):
        service.set_level(LOGGER, "DEBUG", duration="60")
    assert logger.level == logging.WARNING
    assert not list(full_state.root.glob(".loglevels.json.*"))  # no partial file left


def test_acks_of_dead_or_reused_pids_are_not_waited_for(state: StateDir) -> None:
    sync = LevelSync(state.root)
    sync.directory.mkdir()
    parent = os.getppid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = {parent: 1, int(dead.stdout): 1}  # wrong start time; no such process
    for pid, started in stale.items():
        (sync.directory / f"{pid}.ack").write_text(json.dumps(
            {"pid": pid, "started": started, "generation": 0}))
    started = time.monotonic()
    assert sync.wait_for(10**20) == {}
    assert time.monotonic() - started < 0.5
    assert sync.peers() == {}


def test_a_due_revert_is_carried_out_by_the_listener_at_its_time(
        state: StateDir, logger: logging.Logger, peer: subprocess.Popen[str]) -> None:
    levels = SharedLogLevels(state)
    levels.publish(LOGGER, "DEBUG", Revert("ERROR", time.time() + 0.3))
    assert peer_level(peer) == "DEBUG"
    # no background tick in either process: only the peer's listener can carry it out
    wait_until(lambda: peer_level(peer) == "ERROR", 5, message="the peer's revert")
    assert levels.pending() == {}
    assert levels.levels() == {LOGGER: "ERROR"}


def test_unwritable_ack_directory_does_not_stop_the_worker(state: StateDir,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    levels = SharedLogLevels(state)
    (state.root / "level-sync").write_text("not a directory")
    levels.listen()  # falls back to the background tick, with one warning
    assert "cannot listen for log level changes" in caplog.text
    levels.publish(LOGGER, "INFO", None)
    assert logging.getLogger(LOGGER).level == logging.INFO


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
