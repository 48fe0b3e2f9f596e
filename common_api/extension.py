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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, got_request_exception, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState
from prometheus_client import CollectorRegistry, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from common_api import __version__, config
from common_api.backend import Coordination, coordination_for
from common_api.endpoints import ENDPOINTS, Endpoint, PathClaims
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
from common_api.services.threads import ThreadDumpService

if TYPE_CHECKING:
    from common_api.sandbox import ScriptRunner

EXTENSION_KEY = "common_api"
TEXT = "text/plain; charset=utf-8"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
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
    audit: AuditLog = field(default_factory=AuditLog)
    url_prefix: str = ""
    enabled: tuple[Endpoint, ...] = ENDPOINTS
    mounted: dict[str, Endpoint] = field(default_factory=dict)
    claims: PathClaims = field(default_factory=PathClaims)
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


    def endpoint_of(self, flask_endpoint: str | None) -> Endpoint | None:
        """The table row behind a Flask endpoint name of this app, None if not the blueprint's."""
        return self.mounted.get(flask_endpoint or "")

    def openapi_document(self, base: str) -> dict[str, Any]:
        document = copy.deepcopy(_packaged_openapi())
        document["info"]["version"] = __version__
        document["servers"] = [{"url": base or "/"}]
        described = {}
        for endpoint in self.enabled:
            operations = document["paths"][endpoint.openapi_path]
            described[endpoint.openapi_path] = {
                key: value for key, value in operations.items()
                if key.upper() in endpoint.methods or key not in _HTTP_METHODS}
        document["paths"] = described
        return document


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
                            settings[config.HEALTH_PUBLIC], settings[config.ALLOWED_HOSTS]),
        environment=EnvironmentService(settings[config.ENV_SECRET_PATTERN],
                                       _mask_secrets(settings)),
        loglevels=LogLevelService(backend.level_publisher()),
        threads=ThreadDumpService(),
        periodic=periodic,
        metrics=metrics,
        exporter=exporter,
        registry=registry,
        backend=backend,
        enabled=tuple(endpoint for endpoint in ENDPOINTS
                      if endpoint.name not in settings[config.DISABLED_ENDPOINTS]),
    )
    app.extensions[EXTENSION_KEY] = state
    return state


def mount_endpoints(setup_state: BlueprintSetupState,
                    views: Mapping[str, Callable[..., Response]]) -> None:
    """Add a route for each enabled endpoint (a disabled one is not registered at all), and
    claim the paths under them for the blueprint's 404 and 405 answers."""
    app = setup_state.app
    if not isinstance(app, Flask):
        return
    state = setup_app(app)
    prefix = (setup_state.url_prefix or "").rstrip("/")
    if not state.mounted:
        state.url_prefix = prefix
    for endpoint in state.enabled:
        setup_state.add_url_rule(endpoint.rule, endpoint.name, views[endpoint.name],
                                 methods=list(endpoint.methods))
        full_name = f"{setup_state.name_prefix}.{setup_state.name}.{endpoint.name}".lstrip(".")
        state.mounted[full_name] = endpoint
    state.claims.add(prefix, state.enabled)


def finish_registration(setup_state: BlueprintSetupState) -> None:
    """After the blueprint's routes are on the app: answer 404 and 405 under the blueprint's
    rules in its own forms instead of HTML pages, and leave every other path to the host."""
    app = setup_state.app
    if not isinstance(app, Flask):
        return
    for code in (404, 405):
        app.register_error_handler(code, _scoped_http_error(app, code))


def _owner_of_rule(state: CommonApiState, error: MethodNotAllowed) -> Endpoint | None:
    """The blueprint's endpoint whose rule matched the path with another method, if any."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in error.valid_methods or ():
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        endpoint = state.endpoint_of(rule.endpoint)
        if endpoint is not None:
            return endpoint
    return None


def _host_class_handler(app: Flask, error: HTTPException) -> Any:
    """The host's app-wide handler for the error's class (``@app.errorhandler(HTTPException)``),
    which Flask would have chosen had the blueprint's handler for the code not been there."""
    by_class = app.error_handler_spec.get(None, {}).get(None, {})
    for cls in type(error).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def _scoped_http_error(app: Flask, code: int) -> Any:
    previous = app.error_handler_spec.get(None, {}).get(code, {})
    fallback = next(iter(previous.values()), None)

    def handle(error: HTTPException) -> Any:
        state = get_state(current_app)
        if isinstance(error, MethodNotAllowed):
            owner = _owner_of_rule(state, error)
        else:
            owner = state.claims.owner(request.path)
        if owner is None:
            host_handler = fallback or _host_class_handler(app, error)
            return host_handler(error) if host_handler is not None else error
        status = error.code or code
        reason = "Not found" if status == 404 else "Method not allowed"
        message = f"{reason}: {request.method} {request.path}"
        response = (json_response({"error": message}, status) if owner.json
                    else text_response(message, status))
        response.headers["Cache-Control"] = "no-store"
        if status == 405 and isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    return handle
