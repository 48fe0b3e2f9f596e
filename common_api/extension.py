"""Per-app wiring: what registering the blueprint sets up on a Flask app.

Everything an app needs lives in one ``CommonApiState`` at ``app.extensions["common_api"]``,
so two apps in one process share nothing but what is truly process-wide (the logging
tree, the periodic-thread registry, prometheus_client's default registry).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, got_request_exception, request
from prometheus_client import REGISTRY, CollectorRegistry
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

    registry = CollectorRegistry(auto_describe=True)
    exporter = PrometheusMetrics.for_app_factory(
        registry=registry, path=None, export_defaults=False, group_by="endpoint")
    from common_api import __version__

    exporter.info("common_api_info", "Version of the common_api blueprint", version=__version__)
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
    registry.register(PeriodicThreadCollector(local_statuses))

    state = CommonApiState(
        settings=settings,
        access=AccessPolicy(settings[config.TOKEN]),
        environment=EnvironmentService(settings[config.ENV_SECRET_PATTERN],
                                       settings[config.ENV_MASK_SECRETS]),
        loglevels=LogLevelService(),
        threads=ThreadDumpService(),
        periodic=PeriodicStatusService(local_statuses),
        metrics=MetricsService([REGISTRY, registry]),
        exporter=exporter,
        registry=registry,
    )
    app.extensions[EXTENSION_KEY] = state
    return state
