"""Request count and latency of every route, recorded at the WSGI layer.

prometheus-flask-exporter's default instrumentation (before/after/teardown hooks,
label dicts built per request) costs about 1.23x the instructions of a trivial route.
This middleware records the same series names, labelled by endpoint instead of path
(bounded cardinality: unknown paths share ``unmatched``), with the labelled children
cached, so a request costs one timer read, one dict lookup, one increment and one
observation. ``benchmarks/bench_overhead.py`` measures it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

ENDPOINT_KEY = "common_api.endpoint"
UNMATCHED = "unmatched"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RequestMetrics:
    """The request series of one app, in that app's own registry."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "flask") -> None:
        labels = ("method", "endpoint", "status")
        self.requests = Counter(f"{prefix}_http_request_total", "Total number of HTTP requests",
                                labels, registry=registry)
        self.duration = Histogram(f"{prefix}_http_request_duration_seconds",
                                  "HTTP request duration in seconds", labels, registry=registry)
        self.exceptions = Counter(f"{prefix}_http_request_exceptions_total",
                                  "HTTP requests whose handling raised an exception",
                                  ("method", "endpoint"), registry=registry)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, method: str, endpoint: str, status: str, seconds: float) -> None:
        key = (method, endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(*key), self.duration.labels(*key))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def count_exception(self, method: str, endpoint: str) -> None:
        self.exceptions.labels(method, endpoint).inc()


class RequestMetricsMiddleware:
    """Wraps a WSGI app; the app stores the matched endpoint in ``environ[ENDPOINT_KEY]``."""

    def __init__(self, app: WSGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["500"]

        def recording_start_response(status_line: str, headers: Any, exc_info: Any = None
                                     ) -> Any:
            status[0] = status_line[:3]
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            self.metrics.observe(environ.get("REQUEST_METHOD", ""),
                                 environ.get(ENDPOINT_KEY, UNMATCHED), status[0],
                                 time.perf_counter() - started)
