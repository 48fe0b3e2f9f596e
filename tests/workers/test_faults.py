"""Issue 9, part 2: every state-directory fault, injected into a running 3-worker server.

One real gunicorn server (``multi_app:app``, 3 workers) for the whole module, its state
directory on a real 2 MiB tmpfs (``TMPDIR`` points there, so ``common-api serve`` creates
it inside). Each test injects one fault for real (a full file system, a read-only bind
mount, deletion, corrupt files of every kind, SIGKILL and SIGSTOP), checks that the
master and 3 workers stay up, host routes answer 200, the affected endpoints answer 503
with a reason and never HTML, health tells the truth, and that everything recovers by
itself within 5 s of the fault clearing. Each test leaves the server healthy for the next.
Mounting needs root; where the machine refuses, the module is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import LiveServer, delete_tree, launch_server, wait_ready, wait_until


def _multiworker_helpers() -> Any:
    """The request helpers of test_multiworker.py (pytest imports test files by path)."""
    spec = importlib.util.spec_from_file_location(
        "multiworker_helpers", Path(__file__).with_name("test_multiworker.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_mw = _multiworker_helpers()
APPS, LOGGER, WORKERS = _mw.APPS, _mw.LOGGER, _mw.WORKERS
fresh_get, host_counts, spread, value = _mw.fresh_get, _mw.host_counts, _mw.spread, _mw.value
wait_for_workers, worker_pid = _mw.wait_for_workers, _mw.worker_pid

pytestmark = pytest.mark.server

# seconds, from the fault clearing to every answer being right again: the bar is 5 s on an
# idle machine (benchmarks/bench_soak.py and the figures); tests allow for a loaded one
RECOVERY = 15.0
TMPFS_SIZE = "2m"


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def mount_point(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    point = tmp_path_factory.mktemp("faults-tmpfs")
    mounted = run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(point))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.stdout}")
    try:
        yield point
    finally:
        for _ in range(3):  # a read-only bind mount of a failed test may sit on top
            if run("umount", "-l", str(point)).returncode != 0:
                break


class Servers:
    """The module's server; a new one replaces it if a failed test left it broken."""

    def __init__(self, mount_point: Path, log_dir: Path) -> None:
        self._mount_point = mount_point
        self._log_dir = log_dir
        self.current: LiveServer | None = None

    def start(self) -> LiveServer:
        path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
        self.current = launch_server(self._log_dir, "--app", "multi_app:app", "--workers",
                                     str(WORKERS),
                                     env={"PYTHONPATH": path, "TMPDIR": str(self._mount_point)})
        return wait_ready(self.current)

    def healthy_one(self) -> LiveServer:
        if self.current is not None:
            with contextlib.suppress(AssertionError):
                wait_until(lambda: healthy(self.current), 20, interval=0.2,
                           message="a healthy server")
                return self.current
            self.stop()
        server = self.start()
        wait_until(lambda: healthy(server), 20, interval=0.2, message="a healthy server")
        return server

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture(scope="module")
def servers(mount_point: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    holder = Servers(mount_point, tmp_path_factory.mktemp("faults-log"))
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def server(servers: Servers) -> LiveServer:
    """The module's server, once it is whole and healthy again after the last test."""
    return servers.healthy_one()


@pytest.fixture
def workers(server: LiveServer) -> set[int]:
    return wait_for_workers(server)


@pytest.fixture
def state(server: LiveServer) -> Path:
    return Path(fresh_get(server, "/state-dir").json()["state_dir"])


# --------------------------------------------------------------------------- checks


def healthy(server: LiveServer) -> bool:
    with contextlib.suppress(requests.RequestException, ValueError):
        response = fresh_get(server, "/periodic-threads-health")
        body = response.json()
        return response.status_code == 200 and body["workers"] == WORKERS and \
            "worker_problems" not in body
    return False


def worker_processes(server: LiveServer) -> set[int]:
    """The master's live children, from the process table."""
    children: set[int] = set()
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children.update(int(pid) for pid in (task / "children").read_text().split())
    return children


def no_html(response: requests.Response) -> requests.Response:
    assert "html" not in response.headers.get("Content-Type", ""), response.text[:200]
    assert "<html" not in response.text[:500].lower() and "<!doctype" not in \
        response.text[:500].lower(), response.text[:200]
    return response


def assert_up(server: LiveServer) -> None:
    """Master and 3 workers running; host routes answer 200."""
    assert server.proc.poll() is None, f"the master exited:\n{server.log()[-3000:]}"
    wait_until(lambda: len(worker_processes(server)) == WORKERS, 15,
               message=f"{WORKERS} worker processes")
    for _ in range(6):
        response = fresh_get(server, "/hit")
        assert response.status_code == 200, response.text


def hits_total(server: LiveServer) -> float:
    return host_counts(no_html(fresh_get(server, "/metrics")))["host_hits_total"]


def hit(server: LiveServer, count: int) -> None:
    for _ in range(count):
        assert fresh_get(server, "/hit").status_code == 200


def reads_total(server: LiveServer, expected: float,
                seen: dict[int, object] | None = None) -> bool:
    """True once every worker's scrape reads ``expected`` hits; ``seen`` keeps what each
    worker last answered otherwise (for the failure message)."""
    seen = {} if seen is None else seen

    def check(response: requests.Response) -> None:
        if response.status_code != 200:
            seen[worker_pid(response)] = f"{response.status_code} {response.text[:200]}"
        else:
            seen[worker_pid(response)] = host_counts(response)["host_hits_total"]
        assert seen[worker_pid(response)] == expected

    try:
        spread(server, "/metrics", check, timeout=5)
    except AssertionError:
        return False
    return True


def wait_recovered(server: LiveServer, expected_hits: float) -> None:
    wait_until(lambda: healthy(server), RECOVERY, interval=0.1, message="health recovered")
    wait_reading(server, expected_hits)


def wait_reading(server: LiveServer, expected_hits: float, why: str = "") -> None:
    """Wait until every worker's scrape reads ``expected_hits``; fail with what each read."""
    seen: dict[int, object] = {}
    try:
        wait_until(lambda: reads_total(server, expected_hits, seen), RECOVERY, interval=0.1,
                   message=f"every scrape reading {expected_hits} hits{why}")
    except AssertionError as failure:
        raise AssertionError(f"{failure}; last answers by worker: {seen}; files: "
                             f"{hits_by_file(server)}; log:\n{server.log()[-4000:]}") from None


def hits_by_file(server: LiveServer) -> dict[str, object]:
    """host_hits_total as each file of the state directory holds it (for failures)."""
    from prometheus_client.mmap_dict import MmapedDict
    found: dict[str, object] = {}
    try:
        directory = Path(fresh_get(server, "/state-dir").json()["state_dir"]) / "prometheus"
        for path in sorted(directory.iterdir()):
            try:
                found[path.name] = sum(value for key, value, _, _ in
                                       MmapedDict.read_all_values_from_file(str(path))
                                       if '"host_hits_total"' in key)
            except Exception as error:
                found[path.name] = repr(error)
    except Exception as error:
        found["?"] = repr(error)
    return found


def kill_one(server: LiveServer, pid: int) -> int:
    """SIGKILL ``pid``; the pid of its replacement once it answers."""
    before = worker_processes(server)
    os.kill(pid, signal.SIGKILL)
    found = wait_until(lambda: (worker_processes(server) - before) or None, 20,
                       message="a replacement worker")
    assert isinstance(found, set)
    (replacement,) = found
    answer_from(server, replacement)
    return replacement


def answer_from(server: LiveServer, pid: int) -> dict[str, Any]:
    """The host route /pid as answered by worker ``pid`` (its pid and level)."""
    def answer() -> dict[str, Any] | None:
        body: dict[str, Any] = fresh_get(server, "/pid").json()
        return body if body["pid"] == pid else None

    found = wait_until(answer, 20, interval=0, message=f"worker {pid} answering")
    assert isinstance(found, dict)
    return found


def corrupt_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.corrupt-*"))


# --------------------------------------------------------------------------- deletion


def test_deleted_state_dir_recovers_by_itself_with_every_surviving_count(
        server: LiveServer, workers: set[int], state: Path) -> None:
    # first in the module: no worker has died yet, so every count is in a live worker's
    # files (an archive deleted with the directory takes the dead workers' counts along)
    assert not list((state / "prometheus").glob("*_archive.db"))
    hit(server, 12)
    total = hits_total(server)
    delete_tree(state)
    assert_up(server)  # 6 hits
    wait_recovered(server, total + 6)
    assert (state / "prometheus").is_dir()

    # a stopped worker is still seen after the directory went away
    victim = next(iter(workers))
    delete_tree(state)
    os.kill(victim, signal.SIGSTOP)
    try:
        def unhealthy() -> bool:
            response = fresh_get(server, "/periodic-threads-health")
            body = response.json()
            return response.status_code == 503 and body["workers"] == WORKERS
        wait_until(unhealthy, 10, interval=0.1, message="503 naming the stopped worker")
    finally:
        os.kill(victim, signal.SIGCONT)
    wait_recovered(server, total + 6)


def test_reset_while_the_deleted_state_dir_is_repaired_is_503_or_resets_every_worker(
        server: LiveServer, workers: set[int], state: Path) -> None:
    hit(server, 9)
    assert hits_total(server) > 0
    delete_tree(state)

    def reset_done() -> bool:
        response = no_html(requests.post(server.url + "/metrics/reset", timeout=20))
        assert response.status_code in (200, 503), response.text
        assert "\n" not in response.text.strip(), response.text  # a one-line reason
        return response.status_code == 200

    # a reset that answers ok while a worker's files are still missing would leave that
    # worker's counts in every later scrape
    wait_until(reset_done, RECOVERY, interval=0.05, message="a reset answering ok")
    wait_reading(server, 0.0, " after the reset")
    wait_recovered(server, 0.0)


# --------------------------------------------------------------------------- corrupt files


def test_zero_length_misnamed_and_stray_files_fail_no_scrape_and_are_set_aside(
        server: LiveServer, workers: set[int], state: Path) -> None:
    before = hits_total(server)
    prometheus = state / "prometheus"
    (prometheus / "counter_999999.db").touch()
    (prometheus / "gauge_max_999998.db").write_bytes(b"\x00" * 3)
    (prometheus / "histogram_x.db").write_bytes(b"garbage" * 50)
    (prometheus / "counter_archive.db.tmp").write_bytes(b"garbage")
    (state / ".loglevels.json.stray.tmp").write_text("{")
    (state / "workers" / "12.json.tmp").write_text("nonsense")

    def complete(response: requests.Response) -> None:
        assert response.status_code == 200, response.text
        assert host_counts(response)["host_hits_total"] == before

    spread(server, "/metrics", complete)
    assert not list(prometheus.glob("*_99999?.db")) and not (prometheus /
                                                           "histogram_x.db").exists()
    assert {"counter_999999.db", "gauge_max_999998.db", "histogram_x.db"} == {
        name.split(".corrupt-")[0] for name in corrupt_files(prometheus)}
    assert_up(server)
    assert healthy(server)


def test_garbled_levels_file_is_restored_so_replacements_and_later_sets_keep_levels(
        server: LiveServer, workers: set[int], state: Path) -> None:
    for name, level in ((LOGGER, "DEBUG"), ("faults.other", "ERROR")):
        assert fresh_get(server, "/loglevel", logger_name=name, level=level).status_code == 200

    def knows_both(response: requests.Response) -> None:
        assert response.text == "faults.other: ERROR", worker_pid(response)

    # every worker has read the file since (a file garbled within a quarter second of a
    # change may come back as a worker last read it: docs/multiworker.md)
    spread(server, "/loglevel", knows_both, logger_name="faults.other")
    levels_file = state / "loglevels.json"
    levels_file.write_text('{"levels": ["not", "an object"]')

    def restored() -> bool:
        with contextlib.suppress(OSError, ValueError):
            levels = json.loads(levels_file.read_text())["levels"]
            return bool(levels == {LOGGER: "DEBUG", "faults.other": "ERROR"})
        return False

    wait_until(restored, RECOVERY, message="the levels file restored")
    assert corrupt_files(state) and corrupt_files(state)[0].startswith("loglevels.json")
    assert "loglevels.json" in server.log() and "unusable" in server.log()

    victim = next(iter(workers))
    replacement = kill_one(server, victim)
    assert answer_from(server, replacement)["level"] == "DEBUG"
    assert fresh_get(server, "/loglevel", logger_name="faults.third",
                     level="INFO").status_code == 200
    assert json.loads(levels_file.read_text())["levels"] == {
        LOGGER: "DEBUG", "faults.other": "ERROR", "faults.third": "INFO"}
    for name in (LOGGER, "faults.other", "faults.third"):
        fresh_get(server, "/loglevel", logger_name=name, level="NOTSET").raise_for_status()


@pytest.mark.parametrize("garbage", ["{not json", '{"values": 5, "taken_at": 1}',
                                     '{"taken_at": "x", "values": []}', ""])
def test_garbled_baseline_never_undoes_a_reset(server: LiveServer, workers: set[int],
                                               state: Path, garbage: str) -> None:
    hit(server, 10)
    assert requests.post(server.url + "/metrics/reset", timeout=20).status_code == 200
    hit(server, 3)
    baseline = state / "metrics-baseline.json"
    wait_reading(server, 3.0, " since the reset")
    baseline.write_text(garbage)

    def still_reset(response: requests.Response) -> None:
        no_html(response)
        # a worker that knew the baseline restores it; none may show the raw count
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            assert host_counts(response)["host_hits_total"] == 3.0, worker_pid(response)
        else:
            assert "baseline" in response.text

    spread(server, "/metrics", still_reset)
    wait_reading(server, 3.0, ": the baseline restored")
    assert any(name.startswith("metrics-baseline.json") for name in corrupt_files(state))


def test_status_file_with_wrong_types_breaks_no_listing_or_health(
        server: LiveServer, workers: set[int], state: Path) -> None:
    victim = next(iter(workers))
    (state / "workers" / f"{victim}.json").write_text(json.dumps({
        "pid": victim, "written_at": "yesterday",
        "threads": [{"name": 5, "level": [], "is_active": "yes", "interval": None}]}))

    def fine(response: requests.Response) -> None:
        no_html(response)
        assert response.status_code == 200, response.text

    spread(server, "/periodic-threads", fine)
    spread(server, "/metrics", fine)
    wait_until(lambda: healthy(server), RECOVERY, message="health 200 once it republished")


def test_corrupt_archive_and_corrupt_file_of_a_worker_block_nothing_for_long(
        server: LiveServer, workers: set[int], state: Path) -> None:
    prometheus = state / "prometheus"
    first = kill_one(server, next(iter(workers)))
    archive = prometheus / "counter_archive.db"
    wait_until(archive.exists, 10, message="an archive")
    archive.write_bytes(b"\xff" * 64)
    response = no_html(fresh_get(server, "/metrics"))
    assert response.status_code == 200, response.text
    assert any(name.startswith("counter_archive.db") for name in corrupt_files(prometheus))

    # a live worker's file turned garbage: scrapes say which, until that worker is gone
    (victim,) = [pid for pid in wait_for_workers(server) if pid != first][:1]
    victim_file = prometheus / f"counter_{victim}.db"
    with victim_file.open("r+b") as handle:
        handle.write(b"\xff\xff\xff\x7f")
    broken = no_html(fresh_get(server, "/metrics"))
    assert broken.status_code == 503
    assert broken.headers["Content-Type"].startswith("text/plain")
    assert f"counter_{victim}.db" in broken.text and "\n" not in broken.text.strip()
    kill_one(server, victim)
    total = hits_total(server)
    hit(server, 4)
    wait_recovered(server, total + 4)
    assert_up(server)
    # the garbage archive took its counts along, so the raw count may now be below the
    # baseline of the earlier reset: reported raw until it climbs past the baseline, then
    # net of it (a series restarted underneath). A reset makes later totals comparable.
    assert requests.post(server.url + "/metrics/reset", timeout=20).status_code == 200
    wait_recovered(server, 0.0)


# --------------------------------------------------------------------------- signals


def test_sigstopped_worker_is_reported_unhealthy_and_health_recovers(
        server: LiveServer, workers: set[int]) -> None:
    victim = next(iter(workers))
    os.kill(victim, signal.SIGSTOP)
    try:
        def reports_stopped() -> bool:
            response = no_html(fresh_get(server, "/periodic-threads-health"))
            problems = response.json().get("worker_problems", [])
            return response.status_code == 503 and any(
                p["pid"] == victim and p["unhealthy"] and "stopped" in p["reason"]
                for p in problems)

        wait_until(reports_stopped, 10, interval=0.1, message="the stopped worker reported")
        assert fresh_get(server, "/periodic-threads-health").json()["workers"] == WORKERS
    finally:
        os.kill(victim, signal.SIGCONT)
    wait_until(lambda: healthy(server), RECOVERY, message="health 200 after SIGCONT")


# --------------------------------------------------------------------------- the directory


def test_read_only_state_dir_keeps_workers_booting_and_recovers(
        server: LiveServer, workers: set[int], state: Path) -> None:
    total = hits_total(server)
    mounted = run("mount", "--bind", "-o", "ro", str(state), str(state))
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.strip()}")
    try:
        reset = no_html(requests.post(server.url + "/metrics/reset", timeout=20))
        assert reset.status_code == 503 and "Read-only" in reset.text, reset.text
        level = no_html(fresh_get(server, "/loglevel", logger_name=LOGGER, level="INFO"))
        assert level.status_code == 200, level.text
        assert "Not saved for workers started later" in level.text, level.text
        replacement = kill_one(server, next(iter(workers)))
        assert "Worker failed to boot" not in server.log()
        assert_up(server)  # 6 hits, some of them answered by the replacement
        hit(server, 6)

        def truthful(response: requests.Response) -> None:
            no_html(response)
            body = response.json()
            assert response.status_code == 200, body
            assert body["workers"] == WORKERS
            assert all(not p["unhealthy"] for p in body.get("worker_problems", []))

        wait_until(lambda: fresh_get(server, "/periodic-threads-health").json().get(
            "worker_problems"), 10, message="workers reported as not publishing")
        spread(server, "/periodic-threads-health", truthful,
               must_include=frozenset({replacement}))
        assert "keeps" in server.log() and "in memory" in server.log()
    finally:
        unmount(state)
    fresh_get(server, "/loglevel", logger_name=LOGGER, level="NOTSET")
    wait_recovered(server, total + 12)


def dump_sources(response: requests.Response, fault: str = "") -> dict[int, str]:
    """``/threads?scope=all`` as JSON: how each worker was dumped, by pid; a worker left
    unanswered must name ``fault`` (the directory's trouble) as the reason."""
    no_html(response)
    assert response.status_code == 200, response.text
    for entry in response.json()["workers"]:
        if entry["source"] == "unanswered":
            assert fault and fault in entry["note"], entry
    return {entry["pid"]: entry["source"] for entry in response.json()["workers"]}


def test_read_only_state_dir_dumps_every_worker_under_the_gil_a_booted_one_too(
        server: LiveServer, workers: set[int], state: Path) -> None:
    for lock in ("profile.lock", "memory.lock"):  # as on a server never profiled before
        (state / lock).unlink(missing_ok=True)
    mounted = run("mount", "--bind", "-o", "ro", str(state), str(state))
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.strip()}")
    try:
        replacement = kill_one(server, next(iter(workers)))
        live = worker_processes(server)
        assert replacement in live

        def under_the_gil(response: requests.Response) -> None:
            assert dump_sources(response) == {pid: "python" for pid in live}, \
                response.text[:300]

        # nothing travels through the directory: every worker answers with its stacks
        spread(server, "/threads", under_the_gil, timeout=60, must_include=frozenset(live),
               scope="all", format="json")
        # a window takes its one-per-server turn without the disk, and covers every worker
        profile = no_html(fresh_get(server, "/profile", seconds="0.5", scope="all"))
        assert profile.status_code == 200, profile.text
        assert "X-Profile-Missing-Workers" not in profile.headers
        assert {line.rsplit(" ", 1)[0].split(";")[0] for line in profile.text.splitlines()} \
            == {f"worker {pid}" for pid in live}
        memory = no_html(fresh_get(server, "/memory", seconds="0.2"))
        assert memory.status_code == 200, memory.text
    finally:
        unmount(state)


def unmount(point: Path) -> None:
    """Take the read-only bind mount off ``point``; when a process still holds a file
    opened through it (a worker reopening its FIFO meanwhile), umount answers busy and the
    directory would stay read-only: then detach it lazily, which always takes effect."""
    def mounted() -> bool:
        return f" {point} " in Path("/proc/self/mounts").read_text()

    for _ in range(5):  # a mount stacked twice needs two
        if not mounted():
            return
        if run("umount", str(point)).returncode != 0:
            run("umount", "-l", str(point))
    assert not mounted(), f"{point} is still mounted"


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


def test_full_state_dir_kills_no_worker_nor_the_master_and_recovers(
        server: LiveServer, workers: set[int], state: Path, mount_point: Path) -> None:
    total = hits_total(server)
    filler = fill(mount_point)
    try:
        for _ in range(9):  # new series in every worker: their files must grow
            response = fresh_get(server, "/grow", n="60")
            assert response.status_code == 200, response.text
        level = no_html(fresh_get(server, "/loglevel", logger_name=LOGGER, level="INFO",
                                  format="json"))
        assert level.status_code == 200, level.text
        assert level.json()["unacknowledged_workers"] == []
        assert "No space left" in level.json()["not_saved_for_later_workers"]

        def at_info(response: requests.Response) -> None:
            assert response.json()["effective_level"] == "INFO", response.text

        spread(server, "/loglevel", at_info, must_include=frozenset(workers),
               logger_name=LOGGER, format="json")  # every worker applied it
        reset = no_html(requests.post(server.url + "/metrics/reset", timeout=20))
        assert reset.status_code == 503 and "space" in reset.text, reset.text
        assert worker_processes(server) >= workers, "a worker died"
        replacement = kill_one(server, next(iter(workers)))  # the master folds on a full fs
        assert_up(server)
        assert replacement in worker_processes(server)
        hit(server, 6)
        scrape = no_html(fresh_get(server, "/metrics"))
        assert scrape.status_code == 200
        live = worker_processes(server)
        dumps = fresh_get(server, "/threads", scope="all", format="json")
        assert dump_sources(dumps) == {pid: "python" for pid in live}, dumps.text[:300]
        for entry in dumps.json()["workers"]:
            assert entry["total"] > 0 and len(entry["threads"]) == entry["total"], entry
        profile = no_html(fresh_get(server, "/profile", seconds="0.5", scope="all"))
        assert profile.status_code == 200, profile.text
        assert "X-Profile-Missing-Workers" not in profile.headers
        assert {line.rsplit(" ", 1)[0].split(";")[0] for line in profile.text.splitlines()} == \
            {f"worker {pid}" for pid in live}
        wait_until(lambda: fresh_get(server, "/periodic-threads-health").status_code == 200,
                   RECOVERY, message="health 200 while nobody can publish")
    finally:
        filler.unlink()
    fresh_get(server, "/loglevel", logger_name=LOGGER, level="NOTSET")
    wait_recovered(server, total + 12)
    assert value(fresh_get(server, "/metrics").text, "common_api_workers") == WORKERS
