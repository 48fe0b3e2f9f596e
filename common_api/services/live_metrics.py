"""The part of /metrics that no multiprocess file carries, read live in every worker.

prometheus_client's multiprocess mode exposes only the values in its memory-mapped files:
counters, histograms, summaries and gauges set by value. A gauge fed by ``set_function``
reads 0 there, and ``Info``, ``Enum`` and custom collectors (OpenTelemetry's Prometheus
bridge among them) are not there at all. ``RegistryReader`` reads exactly that part of a
registry in its own process, each collector and each callback on its own, so one that
raises loses its own series only (logged once). ``combine`` merges the parts of every
worker by the rule table of the README ("Metrics"), and ``LiveMetricsCollector`` puts
them together with the files, naming each worker that did not answer in time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from common_api.compat.prometheus import (
    gauge_mode,
    gauge_series,
    registered_collectors,
)
from common_api.services.metrics import note_missing_workers

log = logging.getLogger(__name__)

FILE_BACKED = (Counter, Gauge, Histogram, Summary)
SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})
MISSING_FAMILY = "common_api_scrape_missing_workers"
MISSING_WORKER_FAMILY = "common_api_scrape_missing_worker"
LOG_EVERY = 60.0

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


@dataclass
class LiveFamily:
    """One family read in one worker; ``mode`` is the ``multiprocess_mode`` of a gauge fed
    by ``set_function`` (its samples replace the file's), None for the rest."""

    name: str
    documentation: str
    type: str
    unit: str
    mode: str | None
    samples: list[Sample] = field(default_factory=list)
    replaced: list[dict[str, str]] = field(default_factory=list)  # a callback's series,
    # read or not: the file's 0 of each is left out either way

    def to_json(self) -> list[Any]:
        return [self.name, self.documentation, self.type, self.unit, self.mode,
                [[s.name, s.labels, s.value, s.timestamp] for s in self.samples],
                self.replaced]

    @classmethod
    def from_json(cls, data: Any) -> LiveFamily:
        name, documentation, kind, unit, mode, samples, replaced = data
        family = cls(str(name), str(documentation), str(kind), str(unit),
                     None if mode is None else str(mode),
                     replaced=[{str(k): str(v) for k, v in labels.items()}
                               for labels in replaced])
        for sample_name, labels, value, timestamp in samples:
            if not isinstance(labels, dict):
                raise ValueError("labels are not an object")
            family.samples.append(Sample(str(sample_name),
                                         {str(k): str(v) for k, v in labels.items()},
                                         float(value), timestamp))
        return family

    @classmethod
    def of(cls, metric: Metric, mode: str | None = None,
           replaced: list[dict[str, str]] | None = None) -> LiveFamily:
        """What crosses the channel of ``metric``: name, labels, value and timestamp of
        each sample (exemplars and native histograms stay behind)."""
        return cls(metric.name, metric.documentation, metric.type, metric.unit, mode,
                   [Sample(s.name, s.labels, s.value, s.timestamp) for s in metric.samples],
                   list(replaced or ()))


class _OnceLog:
    """Logs a failure the first time it happens only (per key, for the process's life)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def failed(self, key: str, message: str, *args: object) -> None:
        if key not in self._seen:
            self._seen.add(key)
            log.warning(message, *args, exc_info=True)


class RegistryReader:
    """Reads a registry in this process. With ``multiprocess``, only what the files do not
    carry (``set_function`` series, Info, Enum, custom collectors, per-process collectors);
    without, everything, like ``registry.collect()`` but with each collector and each
    gauge callback on its own."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, multiprocess: bool = True
                 ) -> None:
        self._registry = registry
        self._multiprocess = multiprocess
        self._failures = _OnceLog()

    def metrics(self) -> Iterator[tuple[Metric, str | None, list[dict[str, str]]]]:
        """Each family read: the Metric as its collector made it (exemplars and all), the
        ``multiprocess_mode`` of a gauge fed by ``set_function`` (multiprocess only, else
        None) and the label sets of its callback series (the files' 0s they replace)."""
        target = self._registry.get_target_info()
        if target:
            yield InfoMetricFamily("target", "Target metadata", value=target), None, []
        for collector in registered_collectors(self._registry):
            if isinstance(collector, MultiProcessCollector):
                continue  # the files, read once by the scraping worker, not per worker
            if isinstance(collector, Gauge):
                yield from self._gauge(collector)
            elif not (self._multiprocess and isinstance(collector, FILE_BACKED)):
                yield from ((metric, None, []) for metric in self._collected(collector))

    def families(self) -> list[LiveFamily]:
        return [LiveFamily.of(metric, mode, replaced)
                for metric, mode, replaced in self.metrics()]

    def collect(self) -> Iterator[Metric]:
        """A Collector's face (one process: the whole registry, guarded)."""
        for metric, _, _ in self.metrics():
            yield metric

    def report(self) -> dict[str, Any]:
        """This worker's part, as sent over the peer channel."""
        return {"families": [family.to_json() for family in self.families()]}

    def _collected(self, collector: Collector) -> list[Metric]:
        try:
            return list(collector.collect())
        except Exception:
            self._failures.failed(f"collector {id(collector)}",
                                  "common_api: collector %r raised; its metrics are left out "
                                  "of /metrics (logged once)", collector)
            return []

    def _gauge(self, gauge: Gauge) -> Iterator[tuple[Metric, str | None, list[dict[str, str]]]]:
        series = gauge_series(gauge, callbacks_only=True)
        if not series:
            if not self._multiprocess:
                yield from ((metric, None, []) for metric in self._collected(gauge))
            return
        if not self._multiprocess:
            series = gauge_series(gauge)
        described = next(iter(gauge.describe()))
        family = Metric(described.name, described.documentation, "gauge", described.unit)
        replaced: list[dict[str, str]] = []
        for one in series:
            if self._multiprocess and not one.from_function:
                continue
            if self._multiprocess:
                replaced.append(one.labels)
            try:
                values = [sample.value for sample in one.read()]
            except Exception:
                self._failures.failed(f"gauge {described.name} {sorted(one.labels.items())}",
                                      "common_api: the set_function callback of gauge %s%s "
                                      "raised; its series is left out of /metrics (logged "
                                      "once)", described.name, one.labels or "")
                continue
            for value in values:
                family.add_sample(described.name, one.labels, value)
        yield family, gauge_mode(gauge) if self._multiprocess else None, replaced


# --------------------------------------------------------------------------- combining


def _labels(sample: Sample) -> Labels:
    return tuple(sorted(sample.labels.items()))


def _with_pid(sample: Sample, pid: int) -> Sample:
    name = "pid" if "pid" not in sample.labels else "common_api_pid"
    return sample._replace(labels={**sample.labels, name: str(pid)})


def _by_key(parts: list[tuple[int, LiveFamily]]
            ) -> dict[SeriesKey, list[tuple[int, Sample]]]:
    grouped: dict[SeriesKey, list[tuple[int, Sample]]] = {}
    for pid, family in parts:
        for sample in family.samples:
            grouped.setdefault((sample.name, _labels(sample)), []).append((pid, sample))
    return grouped


def _same_everywhere(found: list[tuple[int, Sample]], workers: int) -> bool:
    first = found[0][1].value
    return len(found) == workers and all(
        sample.value == first or (math.isnan(sample.value) and math.isnan(first))
        for _, sample in found)


def _by_mode(mode: str, found: list[tuple[int, Sample]]) -> list[Sample]:
    base = mode.removeprefix("live")
    values = [sample.value for _, sample in found]
    first = found[0][1]
    if base == "all":
        return [_with_pid(sample, pid) for pid, sample in found]
    if base == "sum":
        return [first._replace(value=math.fsum(values))]
    if base == "max":
        return [first._replace(value=max(values))]
    if base == "min":
        return [first._replace(value=min(values))]
    return [found[-1][1]]  # mostrecent: the value read last


def _by_type(kind: str, key: SeriesKey, found: list[tuple[int, Sample]], workers: int
             ) -> list[Sample]:
    first = found[0][1]
    if kind in SUMMED_TYPES and "quantile" not in dict(key[1]):
        values = [sample.value for _, sample in found]
        if key[0].endswith("_created"):
            return [first._replace(value=min(values))]
        return [first._replace(value=math.fsum(values))]
    if _same_everywhere(found, workers):
        return [first]
    return [_with_pid(sample, pid) for pid, sample in found]


@dataclass
class LivePart:
    families: list[Metric] = field(default_factory=list)
    functions: set[SeriesKey] = field(default_factory=set)  # file series they replace


def combine(reports: Mapping[int, list[LiveFamily]]) -> LivePart:
    """Every worker's live families as one exposition (the README's rule table)."""
    by_name: dict[str, list[tuple[int, LiveFamily]]] = {}
    for pid, families in reports.items():
        for family in families:
            by_name.setdefault(family.name, []).append((pid, family))
    part = LivePart()
    for name, parts in by_name.items():
        head = parts[0][1]
        metric = Metric(name, head.documentation, head.type, head.unit)
        for _, family in parts:
            part.functions.update((name, tuple(sorted(labels.items())))
                                  for labels in family.replaced)
        for key, found in _by_key(parts).items():
            if head.mode is not None:
                metric.samples.extend(_by_mode(head.mode, found))
            else:
                metric.samples.extend(_by_type(head.type, key, found, len(parts)))
        part.families.append(metric)
    return part


def _file_series_key(sample: Sample) -> SeriesKey:
    return sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))


def merge_with_files(files: Iterable[Metric], live: LivePart) -> list[Metric]:
    """The files' families with the series a callback feeds taken out (their 0), and the
    live families added; a name in both is one family."""
    merged: dict[str, Metric] = {}
    for metric in files:
        if live.functions and metric.type == "gauge":
            metric.samples = [s for s in metric.samples
                              if _file_series_key(s) not in live.functions]
        merged[metric.name] = metric
    for metric in live.families:
        existing = merged.get(metric.name)
        if existing is None:
            merged[metric.name] = metric
        elif existing.type == metric.type:
            existing.samples.extend(metric.samples)
        else:
            _TYPE_CLASHES.failed(metric.name, "common_api: %s is a %s in the metric files and "
                                 "a %s in a live collector; the live one is left out of "
                                 "/metrics (logged once)", metric.name, existing.type,
                                 metric.type)
    return list(merged.values())


_TYPE_CLASHES = _OnceLog()


# --------------------------------------------------------------------------- collecting


@dataclass
class Gathered:
    """Each answering worker's families (this one's included), and each worker that gave
    none with the cause."""

    reports: dict[int, list[LiveFamily]]
    missing: dict[int, str]


class MissingWorkerLog:
    """One log line per missing worker per clock minute at most: per process, and with
    ``claim`` (a name only one process of the server gets) across the server's workers."""

    def __init__(self, claim: Callable[[str], bool] | None = None,
                 every: float = LOG_EVERY) -> None:
        self._claim = claim
        self._every = every
        self._last: dict[int, int] = {}

    def report(self, missing: Mapping[int, str]) -> None:
        period = int(time.time() // self._every)
        for pid, cause in missing.items():
            if self._last.get(pid) == period:
                continue
            self._last[pid] = period
            if self._claim is not None and not self._claim(f"missing-{pid}-{period}"):
                continue  # another worker logged it this minute
            log.warning("common_api: /metrics left out worker %d's live metrics "
                        "(callbacks, Info, Enum, custom collectors): %s; its file-backed "
                        "metrics still count", pid, cause)


class LiveMetricsCollector:
    """The multiprocess files plus every live worker's live part: one scrape."""

    def __init__(self, files: Collector, begin: Callable[[], Callable[[], Gathered]],
                 missing_log: MissingWorkerLog | None = None) -> None:
        self._files = files
        self._begin = begin
        self._missing_log = missing_log or MissingWorkerLog()

    def collect(self) -> Iterator[Metric]:
        # the other workers are asked first and answer while this one reads the files:
        # the live part costs the scrape only what outlasts the read
        finish = self._begin()
        files = list(self._files.collect())
        gathered = finish()
        live = combine(gathered.reports)
        yield from merge_with_files(files, live)
        self._missing_log.report(gathered.missing)
        note_missing_workers(gathered.missing)
        yield from missing_families(gathered.missing)

    def collect_for_reset(self) -> Iterable[Metric]:
        """What a reset takes its baseline from: the files only (a collector's own counts
        come from every worker afresh at each scrape; README "Metrics")."""
        return self._files.collect()


def missing_families(missing: Mapping[int, str]) -> Iterator[Metric]:
    count = GaugeMetricFamily(MISSING_FAMILY, "Workers whose live metrics (set_function "
                              "gauges, Info, Enum, custom collectors) this scrape lacks",
                              value=len(missing))
    yield count
    if missing:
        named = GaugeMetricFamily(MISSING_WORKER_FAMILY, "Each worker this scrape lacks the "
                                  "live metrics of, by pid, with the cause",
                                  labels=["pid", "cause"])
        for pid, cause in sorted(missing.items()):
            named.add_metric([str(pid), short_cause(cause)], 1)
        yield named


def short_cause(cause: str) -> str:
    if cause.startswith("stopped"):
        return "stopped"
    if cause.startswith(("no answer", "did not take")):
        return "timeout"
    if cause.startswith("could not answer"):
        return "error"
    return "unreachable"
