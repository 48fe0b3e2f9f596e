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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from common_api.services.metrics import Baseline
from common_api.workers.state_dir import (
    ParsedFile,
    StateDir,
    file_lock,
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


def _parse_baseline(data: Any) -> Baseline | None:
    if not isinstance(data, dict):
        return None
    values = {(name, tuple((k, v) for k, v in labels)): float(value)
              for name, labels, value in data.get("values", [])}
    return Baseline(values, float(data.get("taken_at", 0.0)))


class FileBaselineStore:
    """The reset baseline in a file every worker reads (re-read only when it changes)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = ParsedFile(path, _parse_baseline)

    def load(self) -> Baseline | None:
        return self._file.get()

    def save(self, baseline: Baseline) -> None:
        write_json_atomically(self._path, {
            "taken_at": baseline.taken_at,
            "values": [[name, [list(pair) for pair in labels], value]
                       for (name, labels), value in baseline.values.items()],
        })


def _write_archive(path: Path, values: Iterable[tuple[str, float, float]]) -> None:
    """A fresh mmap file at ``path`` holding (key, value, timestamp) entries."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    target = MmapedDict(str(path))
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
            merge = _most_recent if kind == "gauge_mostrecent" else _merged
            _write_archive(staging, merge(sources))
            os.replace(staging, archive)
            dead.unlink()
