"""The rule table of README "Metrics" (``combine``), the merge with the files, and the
guarded read of a registry, on plain data: no server, no files."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge, Info
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from common_api.services.live_metrics import (
    LiveFamily,
    RegistryReader,
    combine,
    merge_with_files,
)


def family(name: str, kind: str, *samples: tuple[str, dict[str, str], float],
           mode: str | None = None, replaced: list[dict[str, str]] | None = None
           ) -> LiveFamily:
    return LiveFamily(name, f"{name} help", kind, "", mode,
                      [Sample(n, labels, value) for n, labels, value in samples],
                      replaced or [])


def shown(metric: Metric) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in metric.samples}


def only(families: list[Metric], name: str) -> Metric:
    [metric] = [m for m in families if m.name == name]
    return metric


def test_counter_samples_are_summed_and_the_earliest_creation_kept() -> None:
    part = combine({
        1: [family("events", "counter", ("events_total", {"k": "a"}, 2),
                   ("events_created", {"k": "a"}, 50))],
        2: [family("events", "counter", ("events_total", {"k": "a"}, 3),
                   ("events_created", {"k": "a"}, 40))]})
    assert shown(only(part.families, "events")) == {
        ("events_total", (("k", "a"),)): 5, ("events_created", (("k", "a"),)): 40}


def test_gauge_info_and_stateset_once_when_every_worker_agrees_else_one_per_pid() -> None:
    part = combine({
        1: [family("limit", "gauge", ("limit", {}, 3)),
            family("load", "gauge", ("load", {}, 1)),
            family("build", "info", ("build_info", {"v": "1"}, 1))],
        2: [family("limit", "gauge", ("limit", {}, 3)),
            family("load", "gauge", ("load", {}, 2)),
            family("build", "info", ("build_info", {"v": "1"}, 1))]})
    assert shown(only(part.families, "limit")) == {("limit", ()): 3}
    assert shown(only(part.families, "load")) == {("load", (("pid", "1"),)): 1,
                                                  ("load", (("pid", "2"),)): 2}
    assert shown(only(part.families, "build")) == {("build_info", (("v", "1"),)): 1}


def test_a_sample_only_some_workers_report_is_one_per_pid() -> None:
    part = combine({1: [family("seen", "gauge", ("seen", {"q": "x"}, 1))],
                    2: [family("seen", "gauge", ("seen", {"q": "y"}, 1))]})
    assert shown(only(part.families, "seen")) == {
        ("seen", (("pid", "1"), ("q", "x"))): 1, ("seen", (("pid", "2"), ("q", "y"))): 1}


def test_a_sample_with_a_pid_label_of_its_own_keeps_it() -> None:
    part = combine({1: [family("owner", "gauge", ("owner", {"pid": "9"}, 1))],
                    2: [family("owner", "gauge", ("owner", {"pid": "9"}, 2))]})
    assert shown(only(part.families, "owner")) == {
        ("owner", (("common_api_pid", "1"), ("pid", "9"))): 1,
        ("owner", (("common_api_pid", "2"), ("pid", "9"))): 2}


@pytest.mark.parametrize(("mode", "expected"), [
    ("all", {("q", (("pid", "1"),)): 4, ("q", (("pid", "2"),)): 6}),
    ("liveall", {("q", (("pid", "1"),)): 4, ("q", (("pid", "2"),)): 6}),
    ("sum", {("q", ()): 10}), ("livesum", {("q", ()): 10}),
    ("max", {("q", ()): 6}), ("livemax", {("q", ()): 6}),
    ("min", {("q", ()): 4}), ("livemin", {("q", ()): 4}),
    ("mostrecent", {("q", ()): 6}), ("livemostrecent", {("q", ()): 6}),
])
def test_callback_gauges_combine_by_their_multiprocess_mode(
        mode: str, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    part = combine({1: [family("q", "gauge", ("q", {}, 4), mode=mode, replaced=[{}])],
                    2: [family("q", "gauge", ("q", {}, 6), mode=mode, replaced=[{}])]})
    assert shown(only(part.families, "q")) == expected
    assert part.functions == {("q", ())}


def test_the_files_zero_of_a_callback_series_is_replaced_even_when_it_raised() -> None:
    files = GaugeMetricFamily("q", "q help", labels=["pool"])
    files.add_metric(["1"], 0)
    files.add_metric(["2"], 0)
    files.add_metric(["3"], 5)  # set by value, not a callback: stays
    part = combine({1: [family("q", "gauge", ("q", {"pool": "1"}, 7), mode="max",
                               replaced=[{"pool": "1"}, {"pool": "2"}])]})
    merged = merge_with_files([files], part)
    assert len(merged) == 1
    assert shown(merged[0]) == {("q", (("pool", "1"),)): 7, ("q", (("pool", "3"),)): 5}


def test_a_live_family_named_like_a_file_family_of_another_type_is_left_out(
        caplog: pytest.LogCaptureFixture) -> None:
    files = CounterMetricFamily("clash", "from the files", value=1)
    part = combine({1: [family("clash", "gauge", ("clash", {}, 9))]})
    merged = merge_with_files([files], part)
    assert [shown(m) for m in merged] == [{("clash_total", ()): 1}]
    assert "clash is a counter in the metric files and a gauge" in caplog.text


def test_a_raising_collector_or_callback_loses_only_its_own_series_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()

    class Broken:
        def collect(self) -> list[Metric]:
            raise RuntimeError("gone")

    registry.register(Broken())  # type: ignore[arg-type]
    pools = Gauge("pools", "Pools", ["pool"], registry=registry)
    pools.labels("good").set_function(lambda: 4)

    def fail() -> float:
        raise RuntimeError("no pool")

    pools.labels("bad").set_function(fail)
    Info("build", "Build", registry=registry).info({"v": "1"})
    reader = RegistryReader(registry, multiprocess=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            read = {metric.name: shown(metric) for metric in reader.collect()}
            assert read == {"pools": {("pools", (("pool", "good"),)): 4.0},
                            "build": {("build_info", (("v", "1"),)): 1.0}}
    assert caplog.text.count("raised; its metrics are left out") == 1
    assert caplog.text.count("callback of gauge pools") == 1


def test_a_prometheus_client_without_the_registry_layout_read_is_a_503_naming_it() -> None:
    from common_api.compat.prometheus import RegistryLayoutChanged

    class Changed(CollectorRegistry):
        def __init__(self) -> None:
            super().__init__()
            del self._collector_to_names

    with pytest.raises(RegistryLayoutChanged, match="prometheus_client has changed") as error:
        list(RegistryReader(Changed(), multiprocess=True).collect())
    assert error.value.status == 503


def test_a_reset_covers_the_files_and_leaves_a_live_collector_counts_raw() -> None:
    from common_api.services.live_metrics import Gathered, LiveMetricsCollector
    from common_api.services.metrics import MetricsService

    counts = {"files": 5.0, "live": 7.0}

    class Files:
        def collect(self) -> list[Metric]:
            return [CounterMetricFamily("work", "from the files", value=counts["files"])]

    def begin() -> Callable[[], Gathered]:
        live = family("custom", "counter", ("custom_total", {}, counts["live"]))
        return lambda: Gathered({1: [live]}, {})

    service = MetricsService([LiveMetricsCollector(Files(), begin)])
    service.reset()
    counts.update(files=6.0, live=9.0)
    read = {m.name: shown(m) for m in service.collect()}
    assert read["work"] == {("work_total", ()): 1.0}
    assert read["custom"] == {("custom_total", ()): 9.0}
    assert read["common_api_scrape_missing_workers"] == {
        ("common_api_scrape_missing_workers", ()): 0.0}
