"""Per-app wiring: what registering the blueprint sets up on a Flask app.

Everything an app needs lives in one ``CommonApiState`` at ``app.extensions["common_api"]``,
so two apps in one process share nothing but what is truly process-wide (the logging
tree, the periodic-thread registry, prometheus_client's default registry).
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import threading
from dataclasses import dataclass, field
from importlib import resources
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, current_app, got_request_exception, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState
from prometheus_client import CollectorRegistry, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from common_api import __version__, config
from common_api.backend import Coordination, coordination_for
from common_api.services.access import AccessPolicy
from common_api.services.audit import AuditLog
from common_api.services.environment import EnvironmentService
from common_api.services.http_metrics import (
    UNMATCHED,
    RequestMetrics,
    RequestMetricsMiddleware,
)
from common_api.services.loglevels import LogLevelService
from common_api.services.metrics import MetricsService
from common_api.services.periodic_metrics import PeriodicThreadCollector
from common_api.services.periodic_status import PeriodicStatusService
from common_api.services.profiler import Profiler
from common_api.services.threads import ThreadDumpService

if TYPE_CHECKING:
    from common_api.sandbox import ScriptRunner

EXTENSION_KEY = "common_api"
TEXT = "text/plain; charset=utf-8"
OWN_PATHS = ("/env", "/loglevel", "/metrics", "/threads", "/periodic-threads", "/run_script",
             "/openapi.json", "/ui", "/profile", "/memory")
JSON_PATHS = ("/env", "/periodic-threads", "/openapi.json")
_PATH_OF_VIEW = {"env": "/env", "loglevel": "/loglevel", "metrics": "/metrics",
                 "reset_metrics": "/metrics/reset", "threads": "/threads",
                 "periodic_threads": "/periodic-threads",
                 "periodic_thread": "/periodic-threads/{thread_name}",
                 "periodic_threads_health": "/periodic-threads-health",
                 "run_script": "/run_script", "openapi": "/openapi.json", "ui": "/ui",
                 "profile": "/profile", "memory": "/memory"}
log = logging.getLogger(__name__)


def text_response(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type=TEXT)


def json_response(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def _packaged_openapi() -> dict[str, Any]:
    text = resources.files("common_api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


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
    backend: Coordination
    profiler: Profiler = field(default_factory=lambda: Profiler(60.0, config.PROFILE_MAX_SECONDS))
    audit: AuditLog = field(default_factory=AuditLog)
    url_prefix: str = ""
    disabled_views: frozenset[str] = frozenset()
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
                    host_packages=frozenset(self.settings[config.SCRIPT_HOST_PACKAGES]),
                ))
                atexit.register(self._runner.close)
            return self._runner


    def tail(self, req: Request) -> str:
        """The request path below the blueprint's prefix."""
        return req.path[len(self.url_prefix):] if self.url_prefix else req.path

    def owns_path(self, req: Request) -> bool:
        if self.url_prefix:
            return req.path.startswith(self.url_prefix + "/")
        return req.path.startswith(OWN_PATHS)

    def openapi_document(self, base: str) -> dict[str, Any]:
        document = copy.deepcopy(_packaged_openapi())
        document["info"]["version"] = __version__
        document["servers"] = [{"url": base or "/"}]
        for view in self.disabled_views:
            document["paths"].pop(_PATH_OF_VIEW[view], None)
        _state_window_limit(document, self.settings[config.PROFILE_MAX_SECONDS])
        return document


def _state_window_limit(document: dict[str, Any], max_seconds: float) -> None:
    """The ``seconds`` of /profile and /memory as this app bounds it."""
    for path in ("/profile", "/memory"):
        for parameter in document["paths"].get(path, {}).get("get", {}).get("parameters", []):
            if parameter["name"] == "seconds":
                parameter["schema"]["maximum"] = max_seconds
                parameter["schema"]["default"] = min(parameter["schema"]["default"],
                                                     max_seconds)


def _mask_secrets(settings: dict[str, Any]) -> bool:
    """Secrets are shown only when asked for and only to token holders."""
    if settings[config.ENV_MASK_SECRETS]:
        return True
    if settings[config.TOKEN] is None:
        log.warning("%s=false is ignored without %s: /env keeps masking secrets",
                    config.ENV_MASK_SECRETS, config.TOKEN)
        return True
    return False


def get_state(app: Flask) -> CommonApiState:
    state: CommonApiState = app.extensions[EXTENSION_KEY]
    return state


def _instrument_requests(app: Flask, registry: CollectorRegistry) -> None:
    """Count and time every request of the app (its own routes included)."""
    request_metrics = RequestMetrics(registry)
    app.wsgi_app = RequestMetricsMiddleware(app.wsgi_app,  # type: ignore[method-assign]
                                            request_metrics)

    def count_exception(sender: Flask, **_: Any) -> None:
        rule = request.url_rule
        request_metrics.count_exception(request.method,
                                        rule.endpoint if rule is not None else UNMATCHED)

    got_request_exception.connect(count_exception, app, weak=False)


def setup_app(app: Flask) -> CommonApiState:
    """Validate configuration and build the app's services; idempotent per app."""
    if EXTENSION_KEY in app.extensions:
        return get_state(app)
    try:
        settings = config.resolve(app.config)
    except ValueError as exc:
        raise RuntimeError(f"common_api configuration error: {exc}") from None
    for key, value in settings.items():
        if key != config.TOKEN:  # a token read from a file stays out of the app's config
            app.config.setdefault(key, value)
    if not hasattr(app, "state"):
        app.state = SimpleNamespace()  # type: ignore[attr-defined]

    backend = coordination_for(settings[config.STATE_DIR])

    registry = CollectorRegistry(auto_describe=True)
    exporter = PrometheusMetrics.for_app_factory(
        registry=registry, path=None, export_defaults=False, group_by="endpoint")
    Gauge("common_api_info", "Version of the common_api blueprint", ["version"],
          registry=registry, multiprocess_mode="max").labels(__version__).set(1)
    if settings[config.METRICS_INSTRUMENT_REQUESTS]:
        _instrument_requests(app, registry)

    periodic = PeriodicStatusService(backend.statuses, backend.worker_count,
                                     backend.worker_problems)
    periodic_series = PeriodicThreadCollector(periodic)
    metrics = MetricsService([*backend.metric_sources(registry), periodic_series],
                             backend.baseline_store())

    state = CommonApiState(
        settings=settings,
        access=AccessPolicy(settings[config.TOKEN], settings[config.TRUST_LOOPBACK],
                            settings[config.HEALTH_PUBLIC]),
        environment=EnvironmentService(settings[config.ENV_SECRET_PATTERN],
                                       _mask_secrets(settings)),
        loglevels=LogLevelService(backend.level_publisher()),
        threads=ThreadDumpService(),
        periodic=periodic,
        metrics=metrics,
        exporter=exporter,
        registry=registry,
        backend=backend,
        profiler=Profiler(settings[config.PROFILE_MAX_SECONDS], config.PROFILE_MAX_SECONDS,
                          backend.window_lock_dir(), backend.peer_windows()),
    )
    app.extensions[EXTENSION_KEY] = state
    return state


def finish_registration(setup_state: BlueprintSetupState) -> None:
    """After the blueprint's routes are on the app: remove disabled ones, and answer 404 and
    405 under the blueprint's paths in its own forms instead of HTML pages."""
    app = setup_state.app
    if not isinstance(app, Flask):
        return
    state = get_state(app)
    state.url_prefix = (setup_state.url_prefix or "").rstrip("/")
    state.disabled_views = frozenset(state.settings[config.DISABLED_ENDPOINTS])

    def disabled_view(**_: object) -> Response:
        raise NotFound()

    for view in state.disabled_views:
        app.view_functions[f"{setup_state.name}.{view}"] = disabled_view
    for code in (404, 405):
        app.register_error_handler(code, _scoped_http_error(app, code))


def _disabled_rule_matches(state: CommonApiState, error: MethodNotAllowed) -> bool:
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in error.valid_methods or ():
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if str(endpoint).rpartition(".")[2] in state.disabled_views:
            return True
    return False


def _scoped_http_error(app: Flask, code: int) -> Any:
    previous = app.error_handler_spec.get(None, {}).get(code, {})
    fallback = next(iter(previous.values()), None)

    def handle(error: HTTPException) -> Any:
        state = get_state(current_app)
        if not state.owns_path(request):
            return fallback(error) if fallback is not None else error
        status = error.code or code
        if isinstance(error, MethodNotAllowed) and _disabled_rule_matches(state, error):
            status = 404
        reason = "Not found" if status == 404 else "Method not allowed"
        message = f"{reason}: {request.method} {request.path}"
        response = (json_response({"error": message}, status)
                    if state.tail(request).startswith(JSON_PATHS)
                    else text_response(message, status))
        response.headers["Cache-Control"] = "no-store"
        if status == 405 and isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    return handle
