"""Reading every worker's value files for one scrape, summing as it reads.

prometheus_client's multiprocess reader turns each entry of each file into a ``Sample``
and merges them afterwards, so a scrape of N workers builds N samples for every counter,
histogram and summary series only to add them up. The merge of those three kinds is a
plain sum over files (identical in every prometheus_client this package supports), so
``read_metrics`` sums their entries while it reads, from the raw bytes, and hands the merge
one sample per series: what the merge then gives is what it gives for every file's
samples. Each entry's key (the JSON that names the series) is parsed once per process, not
once per file and scrape. Gauge files, whose merge depends on the gauge's mode and pid,
are read by prometheus_client itself.

The file layout read here (a 4-byte used-bytes header, padding to 8 bytes, then entries of
a 4-byte key length, the UTF-8 key padded so the two doubles that follow, value and
timestamp, are 8-byte aligned) is prometheus_client's ``mmap_dict`` format; a file that
does not fit it raises, naming why, gauge files' headers included (checked before
prometheus_client reads them), so callers need no check of their own.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

_INT = struct.Struct("i")
_DOUBLE = struct.Struct("d")
_HEADER_BYTES = 8
_VALUE_BYTES = 16  # value and timestamp
_FIRST_READ = 4096
MAX_CACHED_KEYS = 200_000
MAX_CACHED_BYTES = 32 * 1024 * 1024  # of keys; their parsed forms are about as large

# key bytes -> (family name, sample name, sorted label pairs, help)
ParsedKey = tuple[str, str, tuple[tuple[str, str], ...], str]
_parsed: dict[bytes, ParsedKey] = {}
_cached_bytes = 0


def _parse(key: bytes) -> ParsedKey:
    global _cached_bytes
    parsed = _parsed.get(key)
    if parsed is None:
        family, name, labels, documentation = json.loads(key.decode("utf-8"))
        parsed = (family, name, tuple(sorted(labels.items())), documentation)
        if len(_parsed) >= MAX_CACHED_KEYS or _cached_bytes + len(key) > MAX_CACHED_BYTES:
            _parsed.clear()  # series come and go (and a file may be hostile): stay bounded
            _cached_bytes = 0
        _parsed[key] = parsed
        _cached_bytes += len(key)
    return parsed


def _check_used(path: str, used: int, available: int) -> None:
    if not _HEADER_BYTES <= used <= available:
        raise RuntimeError(f"{os.path.basename(path)}: header claims {used} bytes used of "
                           f"{available}")


def _header(path: str, data: bytes) -> int:
    if len(data) < _HEADER_BYTES:
        raise RuntimeError(f"{os.path.basename(path)}: shorter than its header")
    used: int = _INT.unpack_from(data, 0)[0]
    return used


def used_bytes(path: str) -> bytes:
    """The used part of a value file (FileNotFoundError when it is gone)."""
    with open(path, "rb") as handle:
        data = handle.read(_FIRST_READ)
        used = _header(path, data)
        if used > len(data):
            data += handle.read(used - len(data))
    _check_used(path, used, len(data))
    return data[:used]


def check_header(path: str) -> None:
    """RuntimeError naming why unless the file's used-bytes header fits the file
    (prometheus_client's own reader takes a garbage header for an empty file)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_BYTES)
        size = os.fstat(handle.fileno()).st_size
    _check_used(path, _header(path, head), size)


def add_values(data: bytes, into: dict[bytes, float]) -> None:
    """Add each entry's value in ``data`` (a file's used bytes) to ``into``, by key."""
    unpack_int, unpack_double = _INT.unpack_from, _DOUBLE.unpack_from
    end = len(data)
    pos = _HEADER_BYTES
    get = into.get
    while pos < end:
        length = unpack_int(data, pos)[0] if pos + 4 <= end else 0
        start = pos + 4
        if length <= 0 or start + length > end:
            raise RuntimeError(f"corrupt entry at byte {pos}: a key of {length} bytes")
        key = data[start:start + length]
        pos = start + length + (8 - (length + 4) % 8)
        if pos + _VALUE_BYTES > end:
            raise RuntimeError(f"corrupt entry at byte {start - 4}: its value runs past "
                               f"the {end} bytes used")
        into[key] = get(key, 0.0) + unpack_double(data, pos)[0]
        pos += _VALUE_BYTES


def read_metrics(paths: Sequence[str]) -> dict[str, Metric]:
    """What ``MultiProcessCollector._read_metrics(paths)`` gives, up to one thing: the
    samples of a counter, histogram or summary series are already summed over the files
    (one per series), which ``_accumulate_metrics`` turns into the same families. The
    families come in the order of the first file of their kind, as upstream's do when
    the paths are sorted."""
    first: dict[str, int] = {}  # kind -> index of its first file
    gauge_paths: list[str] = []
    sums: dict[str, dict[bytes, float]] = {}
    for index, path in enumerate(paths):
        kind = os.path.basename(path).split("_")[0]
        first.setdefault(kind, index)
        if kind == "gauge":
            check_header(path)  # the rest is prometheus_client's to read
            gauge_paths.append(path)
        else:
            add_values(used_bytes(path), sums.setdefault(kind, {}))
    by_kind: dict[str, dict[str, Metric]] = {}
    if gauge_paths:
        by_kind["gauge"] = MultiProcessCollector._read_metrics(gauge_paths)  # type: ignore[no-untyped-call]
    for kind, values in sums.items():
        families = by_kind[kind] = {}
        for key, value in values.items():
            family, name, labels, documentation = _parse(key)
            metric = families.get(family)
            if metric is None:
                metric = families[family] = Metric(family, documentation, kind)
            metric.add_sample(name, labels, value)  # type: ignore[arg-type]  # as upstream
    metrics: dict[str, Metric] = {}
    for kind in sorted(by_kind, key=first.__getitem__):
        families = by_kind[kind]
        if families.keys() & metrics.keys():
            # one name in files of two kinds: leave the result to prometheus_client whole
            whole: dict[str, Metric] = MultiProcessCollector._read_metrics(paths)  # type: ignore[no-untyped-call]
            return whole
        metrics.update(families)
    return metrics
