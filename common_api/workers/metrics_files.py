"""prometheus_client multiprocess files: a locked reader, a shared reset baseline, and the
fold that keeps dead workers' counts while removing their files.

Scrape time grows with the number of files, and gunicorn never removes a dead worker's
files, so on every worker exit (gunicorn's ``child_exit``, in the master) its counter,
histogram, summary and sum/min/max/mostrecent gauge files are merged into one
``<kind>_archive.db`` per kind and deleted: totals stay exact and the file count stays at
live workers + archives. The merge and the readers exclude each other with a file lock.

Each file is read on its own, so one bad file decides nothing for the others. A file that
cannot be read is set aside (``state_dir.set_aside``) when no live process writes it: a
dead worker's file, an archive, a stray name. A live worker's file that cannot be read
makes the scrape answer 503 naming it (its counts would be missing), except a zero-length
one, which a worker leaves for an instant while it creates the file and which holds
nothing yet. The fold likewise merges what it can and leaves a file it cannot write (full
or read-only directory) where scrapes still count it, for the next fold.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from common_api.compat import is_off
from common_api.compat import prometheus as compat
from common_api.compat.prometheus import MmapedDict, mmap_key, safe_files
from common_api.errors import Unavailable, describe_error
from common_api.services.metrics import Baseline
from common_api.workers.state_dir import (
    CorruptFile,
    ParsedFile,
    StateDir,
    StateFileError,
    file_lock,
    pid_alive,
    set_aside,
    sweep_stray_files,
)

ARCHIVE = "archive"
log = logging.getLogger(__name__)

LivePids = Callable[[], set[int]]


def file_pid(path: Path) -> int | None:
    """The pid a metric file belongs to (``<kind>_<pid>.db``), None for archives and
    names that are not a worker's."""
    try:
        return int(path.stem.rpartition("_")[2])
    except ValueError:
        return None


def _default_live_pids() -> set[int]:
    return set()


def _read_one(path: Path) -> dict[str, Metric]:
    # one file at a time, so a bad one is found by name (the reader checks its layout)
    return compat.read_metrics([str(path)])


def _combine(into: dict[str, Metric], part: dict[str, Metric]) -> None:
    for name, metric in part.items():
        existing = into.get(name)
        if existing is None:
            into[name] = metric
        else:
            existing.samples.extend(metric.samples)


class LockedMultiProcessCollector:
    """Every worker's values summed, read while no fold is rewriting the files.

    ``live_pids`` names the processes that may still be writing files (the server's
    workers and master); the files of any other pid are a dead worker's."""

    def __init__(self, state: StateDir, live_pids: LivePids = _default_live_pids) -> None:
        self._state = state
        self._live_pids = live_pids

    def _is_live(self, pid: int | None, live: set[int]) -> bool:
        return pid is not None and (pid == os.getpid() or pid in live or
                                    (not live and pid_alive(pid)))

    def collect(self) -> Iterable[Metric]:
        off = is_off(compat.READS_FEATURE)
        if off is not None:  # never guess at the files' layout: say why there is no answer
            raise Unavailable(f"Metrics unavailable: {off.message()}")
        try:
            with file_lock(self._state.metrics_lock, exclusive=False):
                return self._collect_locked()
        except OSError as error:
            raise Unavailable(f"Metrics unavailable: the state directory cannot be read "
                              f"({describe_error(error)})") from None

    def _collect_locked(self) -> list[Metric]:
        paths = sorted(self._state.prometheus.glob("*.db"))
        try:
            # the usual case, every file sound: one pass, keys parsed once across files
            metrics = compat.read_metrics([str(path) for path in paths])
        except Exception:
            live = self._live_pids()
            metrics = {}
            for path in paths:
                try:
                    _combine(metrics, _read_one(path))
                except FileNotFoundError:
                    continue  # a live gauge file removed by a fold meanwhile
                except Exception as error:
                    self._unreadable(path, error, live)
        return list(compat.accumulate_metrics(metrics))

    def _unreadable(self, path: Path, error: Exception, live: set[int]) -> None:
        pid = file_pid(path)
        try:
            empty = path.stat().st_size == 0
        except OSError:
            return
        if self._is_live(pid, live):
            if empty:
                return  # being created this instant; it holds nothing yet
            raise Unavailable(f"Metrics unavailable: {path.name} of live worker {pid} is "
                              f"unreadable ({describe_error(error)})")
        set_aside(path, "empty file" if empty else describe_error(error))


def _parse_baseline(data: Any) -> Baseline | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("values"), list):
        raise ValueError("expected an object with a 'values' list")
    taken_at = data.get("taken_at")
    if not isinstance(taken_at, (int, float)) or isinstance(taken_at, bool):
        raise ValueError("'taken_at' is not a number")
    parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for entry in data["values"]:
        name, labels, number = entry
        if not isinstance(name, str) or not isinstance(number, (int, float)) or \
                isinstance(number, bool) or not math.isfinite(number):
            raise ValueError(f"bad baseline entry {str(entry)[:80]}")
        pairs = tuple((str(k), str(v)) for k, v in labels)
        parsed[(name, pairs)] = float(number)
    return Baseline(parsed, float(taken_at))


def _render_baseline(baseline: Baseline | None) -> Any:
    assert baseline is not None
    return {"taken_at": baseline.taken_at,
            "values": [[name, [list(pair) for pair in labels], value]
                       for (name, labels), value in baseline.values.items()]}


class FileBaselineStore:
    """The reset baseline in a file every worker reads (re-read only when it changes).

    A garbled file is set aside and written back from the last good baseline this
    process read; a process that never read one answers 503 instead of exporting raw
    counts (which would silently undo the reset) until a reset writes a new baseline."""

    def __init__(self, path: Path, lock: Path | None = None) -> None:
        self._path = path
        self._file: ParsedFile[Baseline | None] = ParsedFile(
            path, _parse_baseline, None, _render_baseline,
            lock if lock is not None else path.with_name(path.name + ".lock"))

    def load(self) -> Baseline | None:
        try:
            return self._file.get()
        except CorruptFile as error:
            raise Unavailable(f"Metrics unavailable: the reset baseline {error}; "
                              "POST /metrics/reset starts a new one") from None

    def refresh(self) -> None:
        """Read the file if it changed (the state-sync thread keeps a last good copy)."""
        with contextlib.suppress(Unavailable):
            self.load()

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # CompleteBaselineStore sees to completeness

    def save(self, baseline: Baseline) -> None:
        try:
            self._file.write(baseline)
        except StateFileError as error:
            raise Unavailable(f"Reset failed: {error}") from None


def _write_archive(path: Path, values: Iterable[tuple[str, float, float]]) -> None:
    """A fresh mmap file at ``path`` holding (key, value, timestamp) entries; every byte
    is allocated before it is stored, so a full directory is an OSError, not a SIGBUS."""
    safe_files.install()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    target = safe_files.archive_file(str(path))
    try:
        for key, value, timestamp in values:
            target.write_value(key, value, timestamp)
    finally:
        target.close()


def _merged(sources: list[str]) -> Iterator[tuple[str, float, float]]:
    """Counters, histograms, summaries and sum/min/max gauges, merged by their rule."""
    for metric in MultiProcessCollector.merge(sources, accumulate=False):
        for sample in metric.samples:
            key = mmap_key(metric.name, sample.name, list(sample.labels),
                           list(sample.labels.values()), metric.documentation)
            yield key, sample.value, sample.timestamp or 0.0


def _most_recent(sources: list[str]) -> Iterator[tuple[str, float, float]]:
    """``mostrecent`` gauges: per key, the value with the newest timestamp.
    (``MultiProcessCollector.merge`` drops the timestamps these gauges are judged by.)"""
    newest: dict[str, tuple[float, float]] = {}
    for source in sources:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(source):
            if key not in newest or timestamp >= newest[key][1]:
                newest[key] = (value, timestamp)
    for key, (value, timestamp) in newest.items():
        yield key, value, timestamp


def fold_dead_worker(state: StateDir, pid: int) -> None:
    """Merge worker ``pid``'s metric files into the archives and delete them."""
    fold_dead_workers(state, {pid}, live=lambda _: True)


def fold_dead_workers(state: StateDir, pids: set[int],
                      live: Callable[[int], bool] = pid_alive) -> list[str]:
    """Fold the files of ``pids`` and of every other pid no longer ``live`` (files a
    failed fold left behind), one file at a time; returns what could not be folded."""
    failed: list[str] = []
    directory = str(state.prometheus)
    try:
        with file_lock(state.metrics_lock, exclusive=True):
            by_pid: dict[int, list[Path]] = {}
            for path in state.prometheus.glob("*.db"):
                owner = file_pid(path)
                if owner is not None and (owner in pids or
                                          (owner != os.getpid() and not live(owner))):
                    by_pid.setdefault(owner, []).append(path)
            for owner, paths in sorted(by_pid.items()):
                with contextlib.suppress(Exception):
                    mark_process_dead(owner, directory)
                if not compat.FOLD:
                    continue  # the files stay, still counted (compat.prometheus says why)
                for dead in paths:
                    problem = _fold_file(state, dead, owner)
                    if problem:
                        failed.append(f"{dead.name}: {problem}")
            sweep_stray_files([state.root, state.prometheus, state.workers])
    except OSError as error:
        failed.append(f"state directory: {describe_error(error)}")
    for problem in failed:
        log.warning("common_api: fold left %s for later", problem)
    return failed


def _fold_file(state: StateDir, dead: Path, pid: int) -> str | None:
    """Fold one dead worker's file into its kind's archive; a reason if it could not."""
    suffix = f"_{pid}.db"
    kind = dead.name[: -len(suffix)]
    if not dead.exists():
        return None
    if kind == "gauge_all" or kind.startswith("gauge_live"):
        dead.unlink(missing_ok=True)
        return None
    try:
        _read_one(dead)
    except FileNotFoundError:
        return None
    except Exception as error:
        set_aside(dead, "empty file" if dead.stat().st_size == 0 else describe_error(error))
        return None
    archive = state.prometheus / f"{kind}_{ARCHIVE}.db"
    if archive.exists():
        try:
            _read_one(archive)
        except Exception as error:
            set_aside(archive, describe_error(error))
    sources = [str(archive), str(dead)] if archive.exists() else [str(dead)]
    staging = state.prometheus / f"{kind}_{ARCHIVE}.db.tmp"
    merge = _most_recent if kind == "gauge_mostrecent" else _merged
    try:
        _write_archive(staging, merge(sources))
        os.replace(staging, archive)
    except OSError as error:
        with contextlib.suppress(OSError):
            staging.unlink()
        return describe_error(error)
    dead.unlink(missing_ok=True)
    return None
