"""prometheus_client multiprocess files: a locked reader, a shared reset baseline, and the
fold that keeps dead workers' counts while removing their files.

Scrape time grows with the number of files, and gunicorn never removes a dead worker's
files, so on every worker exit (gunicorn's ``child_exit``, in the master) its counter,
histogram, summary and sum/min/max/mostrecent gauge files are merged into one
``<kind>_archive.db`` per kind and deleted: totals stay exact and the file count stays at
live workers + archives. The merge and the readers exclude each other with a file lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from common_api.services.metrics import Baseline
from common_api.workers.state_dir import (
    StateDir,
    file_lock,
    file_signature,
    read_json,
    write_json_atomically,
)

ARCHIVE = "archive"


class LockedMultiProcessCollector:
    """Every worker's values summed, read while no fold is rewriting the files."""

    def __init__(self, state: StateDir) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        with file_lock(self._state.metrics_lock, exclusive=False):
            files = [str(path) for path in self._state.prometheus.glob("*.db")]
            return list(MultiProcessCollector.merge(files, accumulate=True))


class FileBaselineStore:
    """The reset baseline in a file every worker reads (re-read only when it changes)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cached: tuple[tuple[int, int, int] | None, Baseline | None] = (None, None)

    def load(self) -> Baseline | None:
        signature = file_signature(self._path)
        if signature is None:
            return None
        cached_signature, cached = self._cached
        if signature == cached_signature:
            return cached
        data = read_json(self._path)
        baseline = None
        if isinstance(data, dict):
            values = {(name, tuple((k, v) for k, v in labels)): float(value)
                      for name, labels, value in data.get("values", [])}
            baseline = Baseline(values, float(data.get("taken_at", 0.0)))
        self._cached = (signature, baseline)
        return baseline

    def save(self, baseline: Baseline) -> None:
        write_json_atomically(self._path, {
            "taken_at": baseline.taken_at,
            "values": [[name, [list(pair) for pair in labels], value]
                       for (name, labels), value in baseline.values.items()],
        })


def _write_merged(metrics: Iterable[Metric], path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    target = MmapedDict(str(path))
    try:
        for metric in metrics:
            for sample in metric.samples:
                key = mmap_key(metric.name, sample.name, list(sample.labels),
                               list(sample.labels.values()), metric.documentation)
                target.write_value(key, sample.value, sample.timestamp or 0.0)
    finally:
        target.close()


def _write_most_recent(sources: list[str], path: Path) -> None:
    """Fold ``mostrecent`` gauge files: per key, the value with the newest timestamp.
    (``MultiProcessCollector.merge`` drops the timestamps these gauges are judged by.)"""
    newest: dict[str, tuple[float, float]] = {}
    for source in sources:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(source):
            if key not in newest or timestamp >= newest[key][1]:
                newest[key] = (value, timestamp)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    target = MmapedDict(str(path))
    try:
        for key, (value, timestamp) in newest.items():
            target.write_value(key, value, timestamp)
    finally:
        target.close()


def fold_dead_worker(state: StateDir, pid: int) -> None:
    """Merge worker ``pid``'s metric files into the archives and delete them."""
    directory = str(state.prometheus)
    mark_process_dead(pid, directory)
    suffix = f"_{pid}.db"
    with file_lock(state.metrics_lock, exclusive=True):
        for dead in state.prometheus.glob(f"*{suffix}"):
            kind = dead.name[: -len(suffix)]
            if kind == "gauge_all" or kind.startswith("gauge_live"):
                dead.unlink()
                continue
            archive = state.prometheus / f"{kind}_{ARCHIVE}.db"
            sources = [str(archive), str(dead)] if archive.exists() else [str(dead)]
            staging = state.prometheus / f"{kind}_{ARCHIVE}.db.tmp"
            if kind == "gauge_mostrecent":
                _write_most_recent(sources, staging)
            else:
                _write_merged(MultiProcessCollector.merge(sources, accumulate=False), staging)
            os.replace(staging, archive)
            dead.unlink()
