"""The scrape's reader of the workers' value files (common_api.compat.prometheus.file_reader)
against prometheus_client's own multiprocess exposition of the same files."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from common_api.compat import prometheus as compat
from common_api.compat.prometheus import file_reader

# argv: the directory, then the worker's number; every kind, every gauge mode
WRITER = textwrap.dedent("""
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from prometheus_client import Counter, Gauge, Histogram, Summary
    n = int(sys.argv[2])
    jobs = Counter("jobs", "Jobs done", ["queue"])
    jobs.labels("fast").inc(n + 0.25)
    Counter("jobs_plain", "No labels \u00e9\\\\n").inc(3 * n)
    if n != 1:  # a series only some workers have
        jobs.labels("sl\u00f6w \\"q\\"").inc(7)
    latency = Histogram("latency_seconds", "Latency", ["route"], buckets=(0.1, 1, 10))
    for value in (0.05 * n, 0.5, 5 + n, 50):
        latency.labels("/a").observe(value)
    latency.labels(f"/only-{n % 2}").observe(0.2)
    Summary("payload_bytes", "Payload", ["kind"]).labels("x").observe(100 * n)
    for mode in ("all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin",
                 "mostrecent", "livemostrecent"):
        Gauge(f"depth_{mode}", mode, ["pool"], multiprocess_mode=mode).labels("p").set(n * 2)
""")


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prometheus")
    script = path.parent / "writer.py"
    script.write_text(WRITER)
    for number in range(3):
        subprocess.run([sys.executable, str(script), str(path), str(number)], check=True,
                       env={k: v for k, v in os.environ.items()
                            if not k.startswith(("COMMON_API_", "PROMETHEUS_"))})
    return path


def paths_of(directory: Path) -> list[str]:
    return sorted(str(path) for path in directory.glob("*.db"))


def test_the_merge_is_prometheus_clients_own_family_by_family_and_sample_by_sample(
        directory: Path) -> None:
    paths = paths_of(directory)
    expected = list(MultiProcessCollector.merge(paths))  # type: ignore[no-untyped-call]
    got = list(compat.accumulate_metrics(compat.read_metrics(paths)))
    assert [metric.name for metric in got] == [metric.name for metric in expected]
    assert got == expected  # names, help, types and every sample in the same order
    registry = CollectorRegistry()
    # its own glob, in any order: sums of fractions may differ in the last bit
    MultiProcessCollector(registry, path=str(directory))
    assert normalized(got) == normalized(registry.collect())
    assert {metric.name for metric in got} >= {
        "jobs", "jobs_plain", "latency_seconds", "payload_bytes", "depth_mostrecent"}


def normalized(metrics: Iterable[Metric]) -> list[tuple[object, ...]]:
    return sorted((metric.name, metric.type, metric.documentation,
                   sorted((s.name, sorted(s.labels.items()), round(s.value, 9))
                          for s in metric.samples))
                  for metric in metrics)


def test_counters_histograms_and_summaries_reach_the_merge_summed_once_per_series(
        directory: Path) -> None:
    metrics = compat.read_metrics(paths_of(directory))
    jobs = metrics["jobs"].samples
    assert len(jobs) == 2  # one per series, not one per worker's file
    assert sum(sample.value for sample in jobs) == 0.25 + 1.25 + 2.25 + 2 * 7
    # gauges are read per worker, as prometheus_client reads them
    assert len(metrics["depth_all"].samples) == 3


def test_one_name_in_files_of_two_kinds_is_left_to_prometheus_client_whole(
        tmp_path: Path, directory: Path) -> None:
    for path in directory.glob("counter_*.db"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    # another process's gauge named like a counter family
    (tmp_path / "gauge_all_999.db").write_bytes(
        _file(_entry(b'["jobs_plain", "jobs_plain", {"pool": "p"}, "g"]', 5.0)))
    paths = paths_of(tmp_path)
    expected = MultiProcessCollector._read_metrics(paths)  # type: ignore[no-untyped-call]
    got = compat.read_metrics(paths)
    assert got == expected
    assert len(got["jobs_plain"].samples) == 4  # three counter files' and the gauge's


def _file(*entries: bytes, used: int | None = None) -> bytes:
    body = b"".join(entries)
    total = 8 + len(body)
    return struct.pack("i", total if used is None else used) + b"\0" * 4 + body


def _entry(key: bytes, value: float, length: int | None = None) -> bytes:
    padded = key + b" " * (8 - (len(key) + 4) % 8)
    return struct.pack("i", len(key) if length is None else length) + padded + struct.pack(
        "dd", value, 0.0)


GOOD_KEY = b'["c", "c_total", {}, "help"]'


@pytest.mark.parametrize(("content", "cause"), [
    (_file(_entry(GOOD_KEY, 1.0, length=-8)), "a key of -8 bytes"),
    (_file(_entry(GOOD_KEY, 1.0, length=0)), "a key of 0 bytes"),
    (_file(_entry(GOOD_KEY, 1.0, length=4000)), "a key of 4000 bytes"),
    (_file(_entry(GOOD_KEY, 1.0))[:-8], "header claims"),
    (_file(_entry(GOOD_KEY, 1.0), used=4), "header claims 4 bytes"),
    (b"\x10\0", "shorter than its header"),
    (_file(_entry(GOOD_KEY, 1.0))[:-8] + b"", "header claims"),
])
def test_a_file_that_does_not_fit_the_layout_raises_naming_why(
        tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "counter_1.db"
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match=cause):
        compat.read_metrics([str(path)])


def test_a_value_cut_short_inside_the_used_bytes_raises(tmp_path: Path) -> None:
    entry = _entry(GOOD_KEY, 1.0)
    path = tmp_path / "counter_1.db"
    path.write_bytes(_file(entry[:-8]))  # header and entry agree, the value is cut
    with pytest.raises(RuntimeError, match="runs past"):
        compat.read_metrics([str(path)])


def test_a_key_that_is_not_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "counter_1.db"
    path.write_bytes(_file(_entry(b"not json at all!", 1.0)))
    with pytest.raises(ValueError):
        compat.read_metrics([str(path)])


def test_the_parsed_keys_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    monkeypatch.setattr(file_reader, "MAX_CACHED_KEYS", 10)
    monkeypatch.setattr(file_reader, "_parsed", {})
    entries = [_entry(f'["c{n}", "c{n}_total", {{}}, "h"]'.encode(), 1.0) for n in range(25)]
    path = tmp_path / "counter_1.db"
    path.write_bytes(_file(*entries))
    assert len(compat.read_metrics([str(path)])) == 25
    assert len(file_reader._parsed) <= 10


def test_the_parsed_keys_stay_within_their_bytes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_reader, "MAX_CACHED_BYTES", 4096)
    monkeypatch.setattr(file_reader, "_parsed", {})
    monkeypatch.setattr(file_reader, "_cached_bytes", 0)
    help_text = "h" * 1000  # keys of about a kilobyte each
    entries = [_entry(f'["c{n}", "c{n}_total", {{}}, "{help_text}"]'.encode(), 1.0)
               for n in range(20)]
    path = tmp_path / "counter_1.db"
    path.write_bytes(_file(*entries))
    assert len(compat.read_metrics([str(path)])) == 20
    assert sum(len(key) for key in file_reader._parsed) <= 4096


KINDS = ("counter", "histogram", "summary", "gauge_all", "gauge_livesum", "gauge_max",
         "gauge_mostrecent")
LABEL_VALUES = st.sampled_from(["a", "b", "é \"q\"", "", "x\\ny"])
VALUES = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


def _samples_of(kind: str, family: str) -> list[tuple[str, dict[str, str]]]:
    if kind == "histogram":
        return [(f"{family}_bucket", {"le": le}) for le in ("0.1", "1.0", "+Inf")] + [
            (f"{family}_sum", {})]
    if kind == "summary":
        return [(f"{family}_count", {}), (f"{family}_sum", {})]
    if kind == "counter":
        return [(f"{family}_total", {})]
    return [(family, {})]


@st.composite
def value_files(draw: st.DrawFn) -> list[tuple[str, list[tuple[str, float, float]]]]:
    files = []
    for pid in range(draw(st.integers(1, 4))):
        for kind in draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4,
                                  unique=True)):
            entries = []
            for family in draw(st.lists(st.sampled_from(["f1", "f2", "f3"]), min_size=1,
                                        max_size=3, unique=True)):
                name = f"{kind.split('_')[0]}_{family}"  # one kind per family name
                for value_of_label in draw(st.lists(LABEL_VALUES, min_size=1, max_size=2,
                                                    unique=True)):
                    for sample, extra in _samples_of(kind.split("_")[0], name):
                        labels = {"k": value_of_label, **extra}
                        key = mmap_key(name, sample, list(labels), list(labels.values()),
                                       f"help of {name}")
                        entries.append((key, draw(VALUES), draw(VALUES)))
            files.append((f"{kind}_{100 + pid}.db", entries))
    return files


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value_files())
def test_any_set_of_files_merges_as_prometheus_client_merges_it(
        tmp_path_factory: pytest.TempPathFactory,
        files: list[tuple[str, list[tuple[str, float, float]]]]) -> None:
    directory = tmp_path_factory.mktemp("generated")
    for name, entries in files:
        written = MmapedDict(str(directory / name))
        for key, value, timestamp in entries:
            written.write_value(key, value, timestamp)
        written.close()
    paths = paths_of(directory)
    expected = list(MultiProcessCollector.merge(paths))  # type: ignore[no-untyped-call]
    assert list(compat.accumulate_metrics(compat.read_metrics(paths))) == expected
