"""The fault handling of common_api.workers piece by piece, without gunicorn (issue 9,
part 2): garbled, misshapen, deleted and unwritable state files; unreadable metric files;
workers that are stopped or cannot publish. The whole server under the same faults is
tests/workers/test_faults.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from common_api.coordination.shared import CompleteBaselineStore
from common_api.errors import Unavailable
from common_api.services.metrics import Baseline, MetricsService
from common_api.services.periodic_status import PeriodicStatusService
from common_api.workers.metrics_files import FileBaselineStore, LockedMultiProcessCollector
from common_api.workers.peers import Worker
from common_api.workers.shared_levels import SharedLogLevels
from common_api.workers.state_dir import (
    CorruptFile,
    ParsedFile,
    StateDir,
    write_json_atomically,
)
from common_api.workers.status_board import StatusBoard


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state").create()


def parse_numbers(data: Any) -> list[int]:
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(n, int) for n in data):
        raise ValueError("expected a list of integers")
    return data


def numbers_file(path: Path) -> ParsedFile[list[int]]:
    return ParsedFile(path, parse_numbers, [], lambda value: value,
                      path.with_name(path.name + ".lock"))


def set_aside_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".corrupt-" in p.name)


# --------------------------------------------------------------------------- ParsedFile


@pytest.mark.parametrize("garbage", ["[1, 2", '{"a": 1}', '["x"]', ""])
def test_garbled_file_is_set_aside_and_restored_from_the_last_good_copy(
        tmp_path: Path, garbage: str) -> None:
    path = tmp_path / "numbers.json"
    writer, reader = numbers_file(path), numbers_file(path)
    writer.write([1, 2, 3])
    assert reader.get() == [1, 2, 3]
    path.write_text(garbage)
    assert reader.get() == [1, 2, 3]
    assert json.loads(path.read_text()) == [1, 2, 3]
    (aside,) = set_aside_files(tmp_path)
    assert aside.startswith("numbers.json.corrupt-")
    assert (tmp_path / aside).read_text() == garbage


def test_garbled_file_without_a_good_copy_is_a_503_not_an_empty_value(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("[1, 2")
    fresh = numbers_file(path)
    with pytest.raises(CorruptFile, match=r"numbers\.json was unusable") as raised:
        fresh.get()
    assert isinstance(raised.value, Unavailable)
    assert not path.exists() and len(set_aside_files(tmp_path)) == 1
    assert fresh.get() == []  # set aside once: from then on, as if never written


def test_deleted_file_is_written_back_by_a_process_that_read_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "numbers.json"
    path.parent.mkdir()
    reader = numbers_file(path)
    numbers_file(path).write([7])
    assert reader.get() == [7]
    shutil.rmtree(path.parent)
    assert reader.get() == [7]  # the directory is not back yet: answered from the copy
    assert not path.exists() and reader.problem is not None
    path.parent.mkdir()  # the state-sync thread's StateDir.ensure
    assert reader.get() == [7]
    assert json.loads(path.read_text()) == [7]


def test_restore_never_overwrites_a_newer_write(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    old_reader = numbers_file(path)
    numbers_file(path).write([1])
    assert old_reader.get() == [1]
    numbers_file(path).write([2])
    assert old_reader.get() == [2]
    assert json.loads(path.read_text()) == [2]


# --------------------------------------------------------------------------- shared files


def test_garbled_levels_file_keeps_every_logger_for_the_next_set(state: StateDir) -> None:
    first, second = SharedLogLevels(state), SharedLogLevels(state)
    first.publish("units.a", "DEBUG", None)
    first.publish("units.b", "ERROR", None)
    assert second.levels() == {"units.a": "DEBUG", "units.b": "ERROR"}
    state.loglevels.write_text('{"levels": {"units.a": 10}}')
    second.publish("units.c", "INFO", None)
    assert json.loads(state.loglevels.read_text())["levels"] == {
        "units.a": "DEBUG", "units.b": "ERROR", "units.c": "INFO"}


@pytest.mark.parametrize("garbage", ["{", '{"values": 5, "taken_at": 1}',
                                     '{"values": [["x", [], "NaN"]], "taken_at": 1}'])
def test_garbled_baseline_never_silently_undoes_a_reset(tmp_path: Path, garbage: str) -> None:
    path = tmp_path / "metrics-baseline.json"
    knows, fresh = FileBaselineStore(path), FileBaselineStore(path)
    knows.save(Baseline({("jobs_total", ()): 10.0}, 5.0))
    assert knows.load() == Baseline({("jobs_total", ()): 10.0}, 5.0)
    path.write_text(garbage)
    with pytest.raises(Unavailable, match=r"baseline.*reset"):
        fresh.load()
    # a worker that read it restores it (the fresh one set it aside first here)
    assert knows.load() == Baseline({("jobs_total", ()): 10.0}, 5.0)
    assert FileBaselineStore(path).load() == Baseline({("jobs_total", ()): 10.0}, 5.0)


def test_baseline_that_cannot_be_written_is_a_503_with_the_reason(tmp_path: Path) -> None:
    store = FileBaselineStore(tmp_path / "missing" / "deeper" / "metrics-baseline.json")
    (tmp_path / "missing").write_text("a file where the directory should be")
    with pytest.raises(Unavailable, match=r"Reset failed: metrics-baseline\.json\S* cannot be"):
        store.save(Baseline({}, 1.0))


# --------------------------------------------------------------------------- metric files

ONE_WORKER = textwrap.dedent("""
    import os
    from prometheus_client import Counter
    Counter("jobs", "Jobs").inc(5)
    print(os.getpid())
""")


def counted(state: StateDir, live: set[int]) -> float:
    collector = LockedMultiProcessCollector(state, lambda: live)
    return sum(s.value for m in collector.collect() for s in m.samples if s.name == "jobs_total")


def finished_worker(state: StateDir) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(state.prometheus)}
    done = subprocess.run([sys.executable, "-c", ONE_WORKER], env=env, capture_output=True,
                          text=True, check=True, timeout=60)
    return int(done.stdout)


def test_unreadable_files_of_no_live_process_are_set_aside_and_the_rest_is_counted(
        state: StateDir) -> None:
    pid = finished_worker(state)
    (state.prometheus / "counter_999999.db").touch()
    (state.prometheus / "counter_archive.db").write_bytes(b"\xff" * 64)
    (state.prometheus / "counter_x.db").write_bytes(b"\x10\x00\x00\x00garbage!" * 3)
    assert counted(state, {pid}) == 5.0
    assert sorted(n.split(".corrupt-")[0] for n in set_aside_files(state.prometheus)) == [
        "counter_999999.db", "counter_archive.db", "counter_x.db"]
    assert counted(state, {pid}) == 5.0


def test_zero_length_file_of_a_live_worker_is_skipped_and_a_garbled_one_is_a_503(
        state: StateDir) -> None:
    pid = finished_worker(state)
    (state.prometheus / "gauge_max_424242.db").touch()
    assert counted(state, {pid, 424242}) == 5.0
    assert (state.prometheus / "gauge_max_424242.db").exists()
    with (state.prometheus / f"counter_{pid}.db").open("r+b") as handle:
        handle.write(b"\xff\xff\xff\x7f")
    with pytest.raises(Unavailable, match=f"counter_{pid}.db of live worker {pid}"):
        counted(state, {pid})


CREATION = textwrap.dedent("""
    import os, struct, sys, threading
    from common_api.compat.prometheus import safe_files as metric_store
    metric_store.install()
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    seen, stop = set(), threading.Event()

    def watch():  # what a scrape in another worker could read, as often as it can
        while not stop.is_set():
            for name in os.listdir(directory):
                if name.endswith(".db"):
                    try:
                        with open(os.path.join(directory, name), "rb") as handle:
                            head = handle.read(4)
                    except FileNotFoundError:
                        continue
                    used = struct.unpack("i", head)[0] if len(head) == 4 else -1
                    seen.add("valid" if 8 <= used else "invalid")

    watcher = threading.Thread(target=watch)
    watcher.start()
    from prometheus_client import Counter, Gauge, Histogram, Summary
    for n in range(40):
        Counter(f"c{n}", "c").inc(); Gauge(f"g{n}", "g", multiprocess_mode="max").set(1)
        Histogram(f"h{n}", "h").observe(1); Summary(f"s{n}", "s").observe(1)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
        from prometheus_client import values
        for target in list(metric_store._value_files().values()):
            target.close()
        metric_store._value_files().clear()
    stop.set(); watcher.join()
    print(sorted(seen))
""")


def test_a_new_value_file_is_never_seen_half_made(tmp_path: Path) -> None:
    # a file that appears with a zero header reads as corrupt; when its worker is not yet
    # listed as live (booting), a scrape would set it aside
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", CREATION], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['valid']", done.stdout


ALLOCATION = textwrap.dedent("""
    import os, sys
    from common_api.compat.prometheus import safe_files as metric_store
    metric_store.install()
    from prometheus_client import Counter
    series = Counter("series", "Series", ["n"])
    series.labels("first").inc()
    filler = os.path.join(sys.argv[1], "filler")
    try:
        with open(filler, "wb") as handle:
            while True:
                handle.write(bytes(65536)); handle.flush()
    except OSError:
        pass
    for n in range(3000):
        series.labels(str(n)).inc()
    print(sorted(metric_store.detached().values()))
    os.unlink(filler)
    print(metric_store.reattach())
    from prometheus_client.multiprocess import MultiProcessCollector
    files = [os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f)
             for f in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])]
    print(sum(s.value for m in MultiProcessCollector.merge(files) for s in m.samples
              if s.name == "series_total"))
""")


def test_full_tmpfs_detaches_instead_of_sigbus_and_every_count_comes_back(
        tmp_path: Path) -> None:
    point = tmp_path / "tmpfs"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        (point / "prometheus").mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(point / "prometheus")}
        done = subprocess.run([sys.executable, "-c", ALLOCATION, str(point)], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
    assert done.returncode == 0, f"exit {done.returncode} (-7 is SIGBUS): {done.stderr}"
    detached, restored, total = done.stdout.splitlines()
    assert detached == "['No space left on device']"
    assert "counter_" in restored
    assert float(total) == 3001.0
    assert "keeps counter_" in done.stderr and "back in the shared directory" in done.stderr


# --------------------------------------------------------------------------- health


def board_entry(now: float) -> dict[str, Any]:
    return {"name": "beat", "level": "critical", "is_running": True, "is_active": True,
            "interval": 0.5, "last_run_timestamp": now - 30, "last_run_ago": 0.1,
            "last_run_time": None, "total_runs": 3, "failed_runs": 0}


def publish_old(state: StateDir, pid: int) -> None:
    now = time.time()
    write_json_atomically(state.worker_status(pid), {
        "pid": pid, "written_at": now - 30, "threads": [{**board_entry(now), "pid": pid}]})


def health_of(board: StatusBoard) -> dict[str, Any]:
    service = PeriodicStatusService(board.statuses, board.worker_count,
                                    lambda: [p.to_dict() for p in board.problems()])
    return service.health()


def test_a_stopped_worker_is_unhealthy_even_without_its_file(state: StateDir) -> None:
    board = StatusBoard(state, list, lambda: [Worker(4242, 0, "T")])
    health = health_of(board)
    assert health["healthy"] is False and health["workers"] == 2
    assert health["worker_problems"] == [
        {"pid": 4242, "reason": "stopped (SIGSTOP or a debugger)", "unhealthy": True}]


def test_when_nobody_can_publish_old_files_are_not_taken_for_stuck_workers(
        state: StateDir) -> None:
    publish_old(state, 4242)
    board = StatusBoard(state, list, lambda: [Worker(4242, 0, "S")])
    assert health_of(board)["healthy"] is False  # publishing works: 4242 looks stuck
    board.publish_error = "Read-only file system"
    health = health_of(board)
    assert health["healthy"] is True
    assert health["worker_problems"] == [
        {"pid": 4242, "reason": "cannot publish (Read-only file system)", "unhealthy": False}]


def test_a_worker_counting_in_memory_is_named_in_health_but_not_unhealthy(
        state: StateDir) -> None:
    now = time.time()
    write_json_atomically(state.worker_status(4242), {
        "pid": 4242, "written_at": now, "threads": [{**board_entry(now), "pid": 4242}],
        "metrics_misplaced": {"counter_4242.db": "No space left on device"}})
    health = health_of(StatusBoard(state, list, lambda: [Worker(4242, 0, "S")]))
    assert health["healthy"] is True
    (problem,) = health["worker_problems"]
    assert problem["pid"] == 4242 and problem["unhealthy"] is False
    assert "counter_4242.db" in problem["reason"] and "No space" in problem["reason"]
    assert "missing from /metrics" in problem["reason"]


def test_status_file_with_wrong_types_is_set_aside_and_reported(state: StateDir) -> None:
    state.worker_status(4242).write_text(json.dumps(
        {"written_at": "x", "threads": [{"name": 1}]}))
    board = StatusBoard(state, list, lambda: [Worker(4242, 0, "S")])
    assert board.statuses() == []
    (problem,) = board.problems()
    assert problem.pid == 4242 and "unusable" in problem.reason
    assert len(set_aside_files(state.workers)) == 1


# --------------------------------------------------------------------------- reset


def complete_store(state: StateDir) -> CompleteBaselineStore:
    """The multi-worker reset's store over ``state``, for a process with no sibling workers."""
    runtime = type("Runtime", (), {})()
    runtime.state = state
    runtime.board = StatusBoard(state, list, list)
    runtime.baseline = FileBaselineStore(state.metrics_baseline)
    return CompleteBaselineStore(runtime)  # type: ignore[arg-type]


class FilesWrittenBackDuringTheRead:
    """A metric source whose read is interleaved with a worker writing its file back
    (the state directory was deleted and is being repaired): a new inode at that name."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> list[Any]:
        staging = self.path.with_suffix(".tmp")
        staging.write_bytes(b"\0" * 64)
        staging.replace(self.path)
        return []


def test_a_reset_whose_read_overlaps_a_file_written_back_is_a_503_not_a_short_baseline(
        state: StateDir) -> None:
    worker_file = state.prometheus / "counter_999991.db"
    worker_file.write_bytes(b"\0" * 64)
    held = worker_file.open("rb")  # keeps the old inode from being reused by the new file
    store = complete_store(state)
    try:
        service = MetricsService([FilesWrittenBackDuringTheRead(worker_file)], store)
        with pytest.raises(Unavailable, match="changed while the reset read them"):
            service.reset()
        assert store.load() is None  # nothing saved
    finally:
        held.close()
    MetricsService([], store).reset()  # a quiet directory resets
    assert store.load() is not None


class AWorkerBootsDuringTheRead:
    """A metric source whose read sees a new worker's first file appear."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> list[Any]:
        self.path.write_bytes(b"\0" * 64)
        return []


def test_a_file_that_appears_during_the_reset_s_read_does_not_fail_it(
        state: StateDir) -> None:
    store = complete_store(state)
    MetricsService([AWorkerBootsDuringTheRead(state.prometheus / "counter_999992.db")],
                   store).reset()
    assert store.load() is not None
