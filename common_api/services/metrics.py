"""Prometheus exposition with a logical reset.

``reset()`` does not touch any metric object: it stores a snapshot (the baseline) of
every counter, histogram and summary sample, and each scrape subtracts it. So after a
reset those read zero and their series stay visible, gauges keep their value, the
host's metric objects are never mutated, and the same rule works when the values come
from several worker processes (the baseline then lives in a shared file).

A series whose raw count falls below its baseline was restarted underneath (a host
called ``reset()`` itself, a process started afresh); it is then reported raw.
"""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

RESETTABLE_TYPES = frozenset({"counter", "histogram", "summary"})
GROUPED_TYPES = frozenset({"histogram", "gaugehistogram", "summary"})
_COUNT_SUFFIXES = ("_total", "_count")
_SERIES_EXTRA_LABELS = ("le", "quantile")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def sample_key(sample: Sample) -> SampleKey:
    return sample.name, tuple(sorted(sample.labels.items()))


def _series_key(metric_name: str, sample: Sample) -> SampleKey:
    labels = tuple(sorted((k, v) for k, v in sample.labels.items()
                          if k not in _SERIES_EXTRA_LABELS))
    return metric_name, labels


@dataclass(frozen=True)
class Baseline:
    """Raw values of resettable samples at the moment of a reset."""

    values: dict[SampleKey, float] = field(default_factory=dict)
    taken_at: float = 0.0


class BaselineStore(Protocol):
    def load(self) -> Baseline | None: ...

    def save(self, baseline: Baseline) -> None: ...

    def snapshot(self) -> AbstractContextManager[None]:
        """The window in which a reset reads the raw values; raises ``Unavailable`` when
        what was read cannot be complete (a worker's values were elsewhere meanwhile)."""
        ...


class MemoryBaselineStore:
    """The baseline of a single process."""

    def __init__(self) -> None:
        self._baseline: Baseline | None = None
        self._lock = threading.Lock()

    def load(self) -> Baseline | None:
        return self._baseline

    def save(self, baseline: Baseline) -> None:
        with self._lock:
            self._baseline = baseline

    def snapshot(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # one process: its values are all here


def subtract_baseline(metric: Metric, baseline: Baseline) -> Metric:
    """A copy of ``metric`` with the baseline taken off every sample that has one."""
    values = baseline.values
    restarted = set()
    for sample in metric.samples:
        if sample.name.endswith(_COUNT_SUFFIXES):
            base = values.get(sample_key(sample))
            if base is not None and sample.value < base:
                restarted.add(_series_key(metric.name, sample))
    adjusted = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    for sample in metric.samples:
        base = values.get(sample_key(sample))
        if base is None or _series_key(metric.name, sample) in restarted:
            adjusted.samples.append(sample)
        elif sample.name.endswith("_created"):
            adjusted.samples.append(sample._replace(value=max(sample.value, baseline.taken_at)))
        else:
            adjusted.samples.append(sample._replace(value=sample.value - base))
    return adjusted


def grouped_by_series(metric: Metric) -> Metric:
    """``metric`` with each series' samples together (OpenMetrics requires it; the
    multiprocess merge of prometheus_client 0.20 and 0.21 interleaves a histogram's series:
    every ``_sum`` first, then the buckets). Already grouped, it is returned as is."""
    order: dict[SampleKey, list[Sample]] = {}
    last: SampleKey | None = None
    interleaved = False
    for sample in metric.samples:
        key = _series_key(metric.name, sample)
        if key != last and key in order:
            interleaved = True
        order.setdefault(key, []).append(sample)
        last = key
    if not interleaved:
        return metric
    regrouped = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    regrouped.samples = [sample for samples in order.values() for sample in samples]
    return regrouped


class _Restricted:
    """The samples of ``names`` only, as prometheus_client's ``restricted_registry``."""

    def __init__(self, source: Collector, names: frozenset[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            samples = [sample for sample in metric.samples if sample.name in self._names]
            if samples:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept


@dataclass
class Scrape:
    """One exposition: the body, its content type, and each worker whose live metrics it
    lacks (pid -> cause)."""

    body: bytes
    content_type: str
    missing_workers: dict[int, str] = field(default_factory=dict)

    def missing_header(self) -> str | None:
        """The value of the response header naming the missing workers, if any."""
        if not self.missing_workers:
            return None
        return ", ".join(f"{pid} ({cause})" for pid, cause in
                         sorted(self.missing_workers.items()))


_SCRAPE: contextvars.ContextVar[Scrape | None] = contextvars.ContextVar(
    "common_api_scrape", default=None)


def note_missing_workers(missing: Mapping[int, str]) -> None:
    """Called by a source during a scrape: these workers' live metrics are not in it."""
    scrape = _SCRAPE.get()
    if scrape is not None:
        scrape.missing_workers.update(missing)


def compress(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """``body`` gzipped when the scraper accepts it (Prometheus does), with the
    Content-Encoding to send; as is otherwise."""
    if accept_encoding and gzip_accepted(accept_encoding):
        return gzip.compress(body, compresslevel=6), "gzip"
    return body, None


class MetricsService:
    """Collects from ``sources`` with the reset baseline applied; itself a Collector."""

    def __init__(self, sources: Sequence[Collector], store: BaselineStore | None = None) -> None:
        self._sources = tuple(sources)
        self._store: BaselineStore = store if store is not None else MemoryBaselineStore()

    def add_source(self, source: Collector) -> None:
        """Collect from ``source`` too (a registry the host brought along later)."""
        if source not in self._sources:
            self._sources = (*self._sources, source)

    def _raw(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()

    def _resettable(self) -> Iterator[Metric]:
        """What a reset reads: each source's ``collect_for_reset`` where it has one (a
        source whose live part is not reset), else its ``collect``."""
        for source in self._sources:
            collect = getattr(source, "collect_for_reset", source.collect)
            yield from collect()

    def collect(self) -> Iterable[Metric]:
        baseline = self._store.load()
        for metric in self._raw():
            if metric.type in GROUPED_TYPES:
                metric = grouped_by_series(metric)
            if baseline is None or metric.type not in RESETTABLE_TYPES:
                yield metric
            else:
                yield subtract_baseline(metric, baseline)

    def exposition(self, accept: str | None = None, names: Sequence[str] = ()
                   ) -> tuple[bytes, str]:
        """The scrape body and its content type, negotiated from an Accept header; with
        ``names`` (prometheus_client's ``name[]``), only the samples of those names."""
        scrape = self.scrape(accept, names)
        return scrape.body, scrape.content_type

    def scrape(self, accept: str | None = None, names: Sequence[str] = ()) -> Scrape:
        """``exposition`` with the workers whose live metrics it lacks."""
        encoder, content_type = choose_encoder(accept or "")
        scrape = Scrape(b"", content_type)
        token = _SCRAPE.set(scrape)
        try:
            scrape.body = encoder(_Restricted(self, frozenset(names)) if names else self)
        finally:
            _SCRAPE.reset(token)
        return scrape

    def reset(self) -> None:
        """Make every counter, histogram and summary read zero from now on."""
        now = time.time()
        values: dict[SampleKey, float] = {}
        with self._store.snapshot():
            for metric in self._resettable():
                if metric.type in RESETTABLE_TYPES:
                    for sample in metric.samples:
                        key = sample_key(sample)
                        values[key] = now if sample.name.endswith("_created") else sample.value
        self._store.save(Baseline(values, now))
