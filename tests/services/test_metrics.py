from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.parser import text_string_to_metric_families

from common_api.services.metrics import MetricsService


def scrape(service: MetricsService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = service.exposition()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def make() -> tuple[CollectorRegistry, MetricsService]:
    registry = CollectorRegistry()
    return registry, MetricsService([registry])


def test_reset_zeroes_counters_and_keeps_series_visible() -> None:
    registry, service = make()
    counter = Counter("jobs", "jobs", ["kind"], registry=registry)
    counter.labels("a").inc(5)
    counter.labels("b").inc(2)
    service.reset()
    values = scrape(service)
    assert values[("jobs_total", (("kind", "a"),))] == 0
    assert values[("jobs_total", (("kind", "b"),))] == 0
    counter.labels("a").inc(3)
    assert scrape(service)[("jobs_total", (("kind", "a"),))] == 3


def test_reset_zeroes_histograms_and_summaries() -> None:
    registry, service = make()
    histogram = Histogram("latency", "l", buckets=(0.1, 1.0), registry=registry)
    summary = Summary("size", "s", registry=registry)
    for value in (0.05, 0.5, 5):
        histogram.observe(value)
        summary.observe(value)
    service.reset()
    values = scrape(service)
    for name in ("latency_count", "latency_sum", "size_count", "size_sum"):
        assert values[(name, ())] == 0, name
    for bound in ("0.1", "1.0", "+Inf"):
        assert values[("latency_bucket", (("le", bound),))] == 0
    histogram.observe(0.5)
    values = scrape(service)
    assert values[("latency_bucket", (("le", "0.1"),))] == 0
    assert values[("latency_bucket", (("le", "1.0"),))] == 1
    assert values[("latency_count", ())] == 1
    assert abs(values[("latency_sum", ())] - 0.5) < 1e-9


def test_gauges_keep_their_value() -> None:
    registry, service = make()
    gauge = Gauge("queue_depth", "q", registry=registry)
    gauge.set(7)
    service.reset()
    assert scrape(service)[("queue_depth", ())] == 7


def test_series_created_after_reset_count_from_zero() -> None:
    registry, service = make()
    counter = Counter("events", "e", ["kind"], registry=registry)
    counter.labels("old").inc()
    service.reset()
    counter.labels("new").inc(4)
    assert scrape(service)[("events_total", (("kind", "new"),))] == 4


def test_series_restarted_underneath_reads_raw() -> None:
    registry, service = make()
    counter = Counter("restarts", "r", registry=registry)
    counter.inc(10)
    service.reset()
    # the series starts again from zero (Counter.reset() is 0.19+: made anew instead)
    registry.unregister(counter)
    counter = Counter("restarts", "r", registry=registry)
    counter.inc(2)
    assert scrape(service)[("restarts_total", ())] == 2


def test_second_reset_takes_a_new_baseline() -> None:
    registry, service = make()
    counter = Counter("twice", "t", registry=registry)
    counter.inc(3)
    service.reset()
    counter.inc(4)
    service.reset()
    counter.inc(1)
    assert scrape(service)[("twice_total", ())] == 1


def test_reset_never_mutates_the_metric_objects() -> None:
    registry, service = make()
    counter = Counter("untouched", "u", registry=registry)
    counter.inc(9)
    service.reset()
    assert counter._value.get() == 9


def test_openmetrics_is_negotiated() -> None:
    registry, service = make()
    Counter("om", "o", registry=registry).inc()
    body, content_type = service.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_interleaved_histogram_series_are_grouped_for_openmetrics() -> None:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.openmetrics.exposition import generate_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    from prometheus_client.samples import Sample

    from common_api.services.metrics import MetricsService

    class Interleaved:
        def collect(self) -> list[Metric]:
            metric = Metric("req_seconds", "latency", "histogram")
            for series in ("a", "b"):
                metric.samples.append(Sample("req_seconds_sum", {"path": series}, 1.0))
            for series in ("a", "b"):
                metric.samples += [
                    Sample("req_seconds_bucket", {"path": series, "le": "+Inf"}, 2.0),
                    Sample("req_seconds_count", {"path": series}, 2.0)]
            return [metric]

    body = generate_latest(MetricsService([Interleaved()])).decode()  # type: ignore[arg-type]
    [family] = text_string_to_metric_families(body)
    assert [s.labels["path"] for s in family.samples] == ["a", "a", "a", "b", "b", "b"]
