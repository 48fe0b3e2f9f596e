"""Request count and latency of every route, recorded at the WSGI layer.

prometheus-flask-exporter's default instrumentation (before/after/teardown hooks,
label dicts built per request) costs about 1.23x the instructions of a trivial route.
This middleware records the same series names, labelled by endpoint instead of path
(bounded cardinality: unknown paths share ``unmatched``), with the labelled children
cached, so a request costs one timer read, one dict lookup, one increment and one
observation, and no Flask hook at all (an app-wide ``after_request`` hook alone costs
about 19k instructions per request, more than the recording).
``benchmarks/bench_overhead.py`` measures it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

UNMATCHED = "unmatched"
# set by prometheus-flask-exporter's do_not_track() and exclude_all_metrics() decorators
NOT_TRACKED = ("prom_do_not_track", "prom_exclude_all")
# in multiprocess mode, the request series of a second app in one process carry this
# label in the shared files, so each app's scrape shows its own (see AppRequestSeries)
APP_LABEL = "common_api_app"
# werkzeug's Request stores itself here; Flask clears it when the request context pops,
# which is after the response has called start_response
REQUEST_KEY = "werkzeug.request"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RequestMetrics:
    """The request series of one app, in that app's own registry."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "flask",
                 app_label: str | None = None) -> None:
        extra = (APP_LABEL,) if app_label is not None else ()
        self.app_label = app_label
        self._extra = (app_label,) if app_label is not None else ()
        labels = ("method", "endpoint", "status", *extra)
        self.registry = registry
        self.requests = Counter(f"{prefix}_http_request_total", "Total number of HTTP requests",
                                labels, registry=registry)
        self.duration = Histogram(f"{prefix}_http_request_duration_seconds",
                                  "HTTP request duration in seconds", labels, registry=registry)
        self.exceptions = Counter(f"{prefix}_http_request_exceptions_total",
                                  "HTTP requests whose handling raised an exception",
                                  ("method", "endpoint", *extra), registry=registry)
        self.family_names = frozenset({f"{prefix}_http_request",
                                       f"{prefix}_http_request_duration_seconds",
                                       f"{prefix}_http_request_exceptions"})
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, method: str, endpoint: str, status: str, seconds: float) -> None:
        key = (method, endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(*key, *self._extra),
                    self.duration.labels(*key, *self._extra))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def count_exception(self, method: str, endpoint: str) -> None:
        self.exceptions.labels(method, endpoint, *self._extra).inc()

    def withdraw(self) -> None:
        """Take the series out of the app's registry (another recorder took over)."""
        for metric in (self.requests, self.duration, self.exceptions):
            with contextlib.suppress(KeyError):
                self.registry.unregister(metric)


def is_tracked(request: Any) -> bool:
    """False when the host marked the request with the exporter's do_not_track()."""
    state = getattr(request, "__dict__", None)
    return state is None or not (NOT_TRACKED[0] in state or NOT_TRACKED[1] in state)


_NO_STATE: dict[str, Any] = {}


def matched_endpoint(environ: dict[str, Any]) -> str | None:
    """The endpoint of the URL rule the app matched, read while the request is alive;
    None when the host asked not to track the request."""
    state = getattr(environ.get(REQUEST_KEY), "__dict__", _NO_STATE)
    if NOT_TRACKED[0] in state or NOT_TRACKED[1] in state:
        return None
    endpoint = getattr(state.get("url_rule"), "endpoint", None)
    return endpoint if isinstance(endpoint, str) else UNMATCHED


class RequestMetricsMiddleware:
    """Wraps a WSGI app; reads the matched endpoint when the app starts its response.
    With ``metrics`` set to None it only forwards."""

    def __init__(self, app: WSGIApp, metrics: RequestMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        metrics = self.metrics
        if metrics is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        seen: list[str | None] = ["500", UNMATCHED]

        def recording_start_response(status_line: str, headers: Any, exc_info: Any = None
                                     ) -> Any:
            seen[0] = status_line[:3]
            seen[1] = matched_endpoint(environ)
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            endpoint = seen[1]
            if endpoint is not None:
                metrics.observe(environ.get("REQUEST_METHOD", ""), endpoint, seen[0] or "500",
                                time.perf_counter() - started)


class AppRequestSeries:
    """One app's view of the shared multiprocess files: of the request families, only
    the samples of ``own`` (None: those without ``APP_LABEL``), with the label removed."""

    def __init__(self, source: Collector, families: frozenset[str], own: str | None) -> None:
        self._source = source
        self._families = families
        self._own = own

    def collect(self) -> Iterable[Metric]:
        return self._own_series(self._source.collect())

    def collect_for_reset(self) -> Iterable[Metric]:
        """The source's reset view (``MetricsService.reset``), filtered alike."""
        return self._own_series(getattr(self._source, "collect_for_reset",
                                        self._source.collect)())

    def _own_series(self, metrics: Iterable[Metric]) -> Iterator[Metric]:
        for metric in metrics:
            if metric.name not in self._families:
                yield metric
                continue
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                if sample.labels.get(APP_LABEL) != self._own:
                    continue
                if self._own is not None:
                    labels = {k: v for k, v in sample.labels.items() if k != APP_LABEL}
                    sample = sample._replace(labels=labels)
                kept.samples.append(sample)
            yield kept
