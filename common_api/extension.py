"""Per-app wiring: what registering the blueprint sets up on a Flask app.

Everything an app needs lives in one ``CommonApiState`` at ``app.extensions["common_api"]``,
so two apps in one process share nothing but what is truly process-wide (the logging
tree, the periodic-thread registry, prometheus_client's default registry).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, got_request_exception, request
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics

from common_api import config
from common_api.periodic import PeriodicThreadRegistry
from common_api.services.access import AccessPolicy
from common_api.services.environment import EnvironmentService
from common_api.services.http_metrics import (
    ENDPOINT_KEY,
    UNMATCHED,
    RequestMetrics,
    RequestMetricsMiddleware,
)
from common_api.services.loglevels import LogLevelService
from common_api.services.metrics import MetricsService
from common_api.services.periodic_metrics import PeriodicThreadCollector
from common_api.services.periodic_status import PeriodicStatusService, Status
from common_api.services.threads import ThreadDumpService
from common_api.workers.runtime import WorkerRuntime
from common_api.workers.state_dir import PROMETHEUS_ENV, StateDir

if TYPE_CHECKING:
    from common_api.sandbox import ScriptRunner

EXTENSION_KEY = "common_api"


def local_statuses() -> list[Status]:
    """Status snapshots of this process's registered periodic threads."""
    return [thread.status() for thread in PeriodicThreadRegistry.get_instance().threads()]


@dataclass
class CommonApiState:
    """The services of one app, built once when the blueprint is registered."""

    settings: dict[str, Any]
    access: AccessPolicy
    environment: EnvironmentService
    loglevels: LogLevelService
    threads: ThreadDumpService
    periodic: PeriodicStatusService
    metrics: MetricsService
    exporter: PrometheusMetrics
    registry: CollectorRegistry
    runtime: WorkerRuntime | None = None
    _runner: ScriptRunner | None = None
    _runner_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scripts(self) -> ScriptRunner:
        """The script runner, started on first use (it may keep a child process)."""
        with self._runner_lock:
            if self._runner is None:
                from common_api.sandbox import ScriptRunner, ScriptSettings

                self._runner = ScriptRunner(ScriptSettings(
                    allowed_imports=frozenset(self.settings[config.SCRIPT_ALLOWED_IMPORTS]),
                    timeout=self.settings[config.SCRIPT_TIMEOUT],
                    max_result_bytes=self.settings[config.SCRIPT_MAX_RESULT_BYTES],
                    max_concurrent=self.settings[config.SCRIPT_MAX_CONCURRENT],
                    memory_limit_bytes=self.settings[config.SCRIPT_MEMORY_LIMIT],
                ))
                atexit.register(self._runner.close)
            return self._runner


def _remember_endpoint(response: Response) -> Response:
    environ = request.environ
    rule = request.url_rule
    environ[ENDPOINT_KEY] = rule.endpoint if rule is not None else UNMATCHED
    return response


def _multiprocess_runtime(state_dir: str) -> WorkerRuntime:
    """The worker runtime for ``state_dir``, after checking metrics really are shared."""
    from prometheus_client import values

    expected = StateDir(state_dir).prometheus.resolve()
    configured = os.environ.get(PROMETHEUS_ENV)
    if not getattr(values.ValueClass, "_multiprocess", False) or configured is None or \
            os.path.realpath(configured) != str(expected):
        raise RuntimeError(
            f"common_api configuration error: COMMON_API_STATE_DIR is {state_dir!r}, so "
            f"{PROMETHEUS_ENV} must be {str(expected)!r} before prometheus_client is first "
            "imported. Serve with 'common-api serve' or 'gunicorn -c "
            "python:common_api.gunicorn_conf', which set both.")
    return WorkerRuntime.for_directory(state_dir)


def get_state(app: Flask) -> CommonApiState:
    state: CommonApiState = app.extensions[EXTENSION_KEY]
    return state


def setup_app(app: Flask) -> CommonApiState:
    """Validate configuration and build the app's services; idempotent per app."""
    if EXTENSION_KEY in app.extensions:
        return get_state(app)
    try:
        settings = config.resolve(app.config)
    except ValueError as exc:
        raise RuntimeError(f"common_api configuration error: {exc}") from None
    for key, value in settings.items():
        app.config.setdefault(key, value)
    if not hasattr(app, "state"):
        app.state = SimpleNamespace()  # type: ignore[attr-defined]

    runtime = _multiprocess_runtime(settings[config.STATE_DIR]) \
        if settings[config.STATE_DIR] else None
    statuses = runtime.board.statuses if runtime is not None else local_statuses

    registry = CollectorRegistry(auto_describe=True)
    exporter = PrometheusMetrics.for_app_factory(
        registry=registry, path=None, export_defaults=False, group_by="endpoint")
    from common_api import __version__

    Gauge("common_api_info", "Version of the common_api blueprint", ["version"],
          registry=registry, multiprocess_mode="max").labels(__version__).set(1)
    if settings[config.METRICS_INSTRUMENT_REQUESTS]:
        request_metrics = RequestMetrics(registry)
        app.wsgi_app = RequestMetricsMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, request_metrics)
        app.after_request(_remember_endpoint)

        def count_exception(sender: Flask, **_: Any) -> None:
            rule = request.url_rule
            request_metrics.count_exception(request.method,
                                            rule.endpoint if rule is not None else UNMATCHED)

        got_request_exception.connect(count_exception, app, weak=False)

    periodic_series = PeriodicThreadCollector(statuses)
    sources: list[Collector]
    if runtime is not None:
        # every metric object's values are in the shared files, whatever its registry
        sources = [runtime.metrics_source, periodic_series]
        metrics = MetricsService(sources, runtime.baseline)
    else:
        metrics = MetricsService([REGISTRY, registry, periodic_series])

    state = CommonApiState(
        settings=settings,
        access=AccessPolicy(settings[config.TOKEN]),
        environment=EnvironmentService(settings[config.ENV_SECRET_PATTERN],
                                       settings[config.ENV_MASK_SECRETS]),
        loglevels=LogLevelService(runtime.levels if runtime is not None else None),
        threads=ThreadDumpService(),
        periodic=PeriodicStatusService(statuses),
        metrics=metrics,
        exporter=exporter,
        registry=registry,
        runtime=runtime,
    )
    app.extensions[EXTENSION_KEY] = state
    return state
