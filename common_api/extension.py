"""Per-app wiring: what registering the blueprint sets up on a Flask app.

One :class:`CommonApi` per app, at ``app.extensions["common_api"]``, in the Flask manner
(``CommonApi(app, **settings)`` or ``init_app``; registering ``bp`` makes one). It holds the
app's services (``CommonApiState``), so two apps in one process share nothing but what is
truly process-wide (the logging tree, the periodic-thread registry, prometheus_client's
default registry, a server's worker runtime).
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

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    got_request_exception,
    jsonify,
    request,
)
from flask.sansio.blueprints import BlueprintSetupState
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wsgi import LimitedStream

from common_api import __version__, config, startup_log
from common_api.compat import flask as compat_flask
from common_api.compat import problems as features_off
from common_api.coordination import Coordination, coordination_for
from common_api.endpoints import ENDPOINTS, Endpoint, PathClaims
from common_api.errors import ConfigurationError
from common_api.host_setup import (
    BeforeFirstRequest,
    GunicornServing,
    HostExporter,
    RouteClash,
    find_host_exporter,
    gunicorn_serving,
    route_clashes,
    share_exporter_route,
)
from common_api.sandbox.setting_checks import check_script_settings
from common_api.services.access import AccessPolicy
from common_api.services.audit import AuditLog
from common_api.services.environment import EnvironmentService
from common_api.services.http_metrics import (
    UNMATCHED,
    AppRequestSeries,
    RequestMetrics,
    RequestMetricsMiddleware,
    is_tracked,
)
from common_api.services.loglevels import LogLevelService
from common_api.services.metrics import MetricsService
from common_api.services.periodic_metrics import PeriodicThreadCollector
from common_api.services.periodic_status import PeriodicStatusService
from common_api.services.profiler import Profiler
from common_api.services.recorder import release_recorder, start_recorder
from common_api.services.tasks import TaskDumpService
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


def error_response(message: str, status: int, as_json: bool) -> Response:
    """Every error body of the endpoints: ``{"error": message}`` or one line of plain
    text, never cached."""
    response = json_response({"error": message}, status) if as_json else text_response(
        message, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def limit_request_body(req: Request, limit: int) -> None:
    """Cap what reading this request's body may consume. Flask 3.1+ takes a per-request
    ``max_content_length``; Flask 3.0's is read-only (the app-wide MAX_CONTENT_LENGTH), so
    there a body of unknown length (chunked) is read through a stream that stops at it."""
    try:
        req.max_content_length = limit  # type: ignore[misc,unused-ignore]
    except AttributeError:
        if req.content_length is None and "stream" not in req.__dict__:
            req.environ["wsgi.input"] = LimitedStream(req.environ["wsgi.input"], limit,
                                                      is_max=True)


def _packaged_openapi() -> dict[str, Any]:
    text = resources.files("common_api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@dataclass
class CommonApiState:
    """The services of one app, built once when the blueprint is registered."""

    settings: config.Settings
    access: AccessPolicy
    environment: EnvironmentService
    loglevels: LogLevelService
    threads: ThreadDumpService
    tasks: TaskDumpService
    periodic: PeriodicStatusService
    metrics: MetricsService
    exporter: PrometheusMetrics
    registry: CollectorRegistry
    coordination: Coordination
    profiler: Profiler = field(default_factory=lambda: Profiler(60.0, config.PROFILE_MAX_SECONDS))
    request_metrics: RequestMetrics | None = None
    middleware: RequestMetricsMiddleware | None = None
    host_exporter: HostExporter | None = None
    reported_clashes: set[tuple[str, str, str]] = field(default_factory=set)
    gunicorn_seen: bool = False
    audit: AuditLog = field(default_factory=AuditLog)
    url_prefix: str = ""
    enabled: tuple[Endpoint, ...] = ENDPOINTS
    # endpoints whose enabling setting is false: their paths answer 404 saying so
    switched_off: tuple[Endpoint, ...] = ()
    mounted: dict[str, Endpoint] = field(default_factory=dict)
    claims: PathClaims = field(default_factory=PathClaims)
    _runner: ScriptRunner | None = None
    _runner_lock: threading.Lock = field(default_factory=threading.Lock)
    _openapi: dict[str, Any] | None = None
    _openapi_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scripts(self) -> ScriptRunner:
        """The script runner, started on first use (it may keep a child process)."""
        with self._runner_lock:
            if self._runner is None:
                from common_api.sandbox import ScriptRunner, ScriptSettings

                self._runner = ScriptRunner(ScriptSettings(
                    allowed_imports=frozenset(self.settings.script_allowed_imports),
                    timeout=self.settings.script_timeout,
                    max_result_bytes=self.settings.script_max_result_bytes,
                    max_concurrent=self.settings.script_max_concurrent,
                    memory_limit_bytes=self.settings.script_memory_limit,
                    host_packages=frozenset(self.settings.script_host_packages),
                    user=self.settings.script_user,
                ))
                atexit.register(self._runner.close)
            return self._runner


    def close(self) -> None:
        """Stop what these services started in this process (the script process, the
        level-revert timer); idempotent."""
        with self._runner_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
        self.loglevels.close()
        if self.profiler.recorder is not None and self.settings.profile_history_seconds > 0:
            with self._runner_lock:
                recorder, self.profiler.recorder = self.profiler.recorder, None
            if recorder is not None:
                release_recorder()

    def endpoint_of(self, flask_endpoint: str | None) -> Endpoint | None:
        """The table row behind a Flask endpoint name of this app, None if not the blueprint's."""
        return self.mounted.get(flask_endpoint or "")

    def openapi_document(self, base: str) -> dict[str, Any]:
        """This app's document, built once; only ``servers`` differs per request (the
        returned dict is new, what it holds is shared: callers do not change it)."""
        with self._openapi_lock:
            if self._openapi is None:
                self._openapi = self._build_openapi()
        return {**self._openapi, "servers": [{"url": base or "/"}]}

    def _build_openapi(self) -> dict[str, Any]:
        document = copy.deepcopy(_packaged_openapi())
        document["info"]["version"] = __version__
        described = {}
        for endpoint in self.enabled:
            operations = document["paths"][endpoint.openapi_path]
            described[endpoint.openapi_path] = {
                key: value for key, value in operations.items()
                if key.upper() in endpoint.methods or key not in _HTTP_METHODS}
        document["paths"] = described
        _state_window_limit(document, self.settings.profile_max_seconds)
        _state_history_limit(document, self.settings.profile_history_seconds)
        return document


def _state_window_limit(document: dict[str, Any], max_seconds: float) -> None:
    """The ``seconds`` of /profile and /memory as this app bounds it."""
    for path in ("/profile", "/memory"):
        for parameter in document["paths"].get(path, {}).get("get", {}).get("parameters", []):
            if parameter["name"] == "seconds":
                parameter["schema"]["maximum"] = max_seconds
                parameter["schema"]["default"] = min(parameter["schema"]["default"],
                                                     max_seconds)


def _state_history_limit(document: dict[str, Any], kept: float) -> None:
    """``last`` of /profile as this app keeps its history (no ``last`` when it keeps none)."""
    operation = document["paths"].get("/profile", {}).get("get", {})
    parameters = operation.get("parameters", [])
    for parameter in list(parameters):
        if parameter["name"] == "last":
            if kept > 0:
                parameter["schema"]["maximum"] = kept
            else:
                parameters.remove(parameter)


def _mask_secrets(settings: config.Settings) -> bool:
    """Secrets are shown only when asked for and only to token holders."""
    if settings.env_mask_secrets:
        return True
    if settings.token is None:
        startup_log.warn(log, "%s=false is ignored without %s: /env keeps masking secrets",
                         config.ENV_MASK_SECRETS, config.TOKEN)
        return True
    return False


#: The blueprint; ``common_api.blueprint`` attaches its views and registration hooks (the
#: package's ``bp`` and ``CommonApi`` are imported through that module, so they are there).
bp = Blueprint("common_api", "common_api.blueprint")


class CommonApi:
    """The extension object of one app: its settings, its services and their lifetime.

    ``CommonApi(app, url_prefix="/ops", script_timeout=5)`` registers the blueprint on
    ``app``; settings given here (by name, ``script_timeout``, or by key,
    ``COMMON_API_SCRIPT_TIMEOUT``) win over ``app.config``, which wins over the environment.
    ``CommonApi()`` then ``init_app(app)`` is the same. ``app.register_blueprint(bp)``
    makes one with no settings of its own. Reading an attribute the object does not have
    reads the app's services (``app.extensions["common_api"].exporter``).
    """

    def __init__(self, app: Flask | None = None, *, url_prefix: str | None = None,
                 **settings: Any) -> None:
        try:
            self.overrides = {config.setting_key(name): value for name, value in settings.items()}
        except ValueError as exc:
            raise TypeError(f"CommonApi: {exc}") from None
        self.url_prefix = url_prefix
        self.app: Flask | None = None
        self.state: CommonApiState | None = None
        self.closed = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the blueprint (and so every service) on ``app``: once, on one app."""
        if not bp.deferred_functions:
            raise RuntimeError("import CommonApi from common_api (its views load with it)")
        if self.app is not None and self.app is not app:
            raise RuntimeError("a CommonApi serves one app: make one per app")
        present = app.extensions.get(EXTENSION_KEY)
        if present is not None and present is not self:
            raise RuntimeError(f"common_api is already set up on app {app.name!r}")
        self.app = app
        app.extensions[EXTENSION_KEY] = self
        if self.state is None:
            app.register_blueprint(bp, url_prefix=self.url_prefix)

    def start(self) -> None:
        """Start this process's side of the server (the worker runtime); gunicorn's
        ``post_worker_init`` does it for every app, a first request would otherwise."""
        state = self._services()
        state.coordination.start()

    def close(self) -> None:
        """Stop what this app started in this process: its script process, its level
        reverts. The worker runtime of a server is the process's and stays."""
        if self.closed:
            return
        self.closed = True
        state = self.state
        if state is not None:
            state.close()

    def _services(self) -> CommonApiState:
        if self.state is None:
            raise RuntimeError("CommonApi is not set up on an app yet (init_app)")
        return self.state

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("state")
        if state is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(state, name)


def get_state(app: Flask) -> CommonApiState:
    extension: CommonApi = app.extensions[EXTENSION_KEY]
    return extension._services()


def _instrument_requests(app: Flask, request_metrics: RequestMetrics
                         ) -> RequestMetricsMiddleware:
    """Count and time every request of the app (its own routes included)."""
    middleware = RequestMetricsMiddleware(app.wsgi_app, request_metrics)
    app.wsgi_app = middleware  # type: ignore[method-assign]

    def count_exception(sender: Flask, **_: Any) -> None:
        if middleware.metrics is None or not is_tracked(request):
            return
        rule = request.url_rule
        request_metrics.count_exception(request.method,
                                        rule.endpoint if rule is not None else UNMATCHED)

    got_request_exception.connect(count_exception, app, weak=False)
    return middleware


# in multiprocess mode every app of the process writes to the same files: the first app's
# request series stay unlabelled, each later one's carry its own APP_LABEL value
_REQUEST_SERIES_APPS: list[str] = []
_REQUEST_SERIES_LOCK = threading.Lock()


def _request_series_label(app: Flask) -> tuple[str | None, int]:
    """This app's APP_LABEL value (None for the first app) and its ordinal."""
    with _REQUEST_SERIES_LOCK:
        taken = len(_REQUEST_SERIES_APPS)
        label = app.name if app.name not in _REQUEST_SERIES_APPS else f"{app.name}#{taken}"
        _REQUEST_SERIES_APPS.append(label)
        return (None if taken == 0 else label), taken


_HOOKS_AUDITED = threading.Event()
_MULTIWORKER_WARNED = threading.Event()


def _warn_multiworker_without_state(workers: int | None) -> None:
    if _MULTIWORKER_WARNED.is_set():
        return
    _MULTIWORKER_WARNED.set()
    count = f"{workers} workers" if workers else "several worker processes"
    startup_log.warn(
        log, "common_api: gunicorn runs %s without common_api's state directory, so each worker "
        "answers only for itself (/metrics counts one worker, a log level set holds in one "
        "worker, health sees one worker). Serve with 'gunicorn -c "
        "python:common_api.gunicorn_conf ...' or 'common-api serve', or call the hooks of "
        "common_api.gunicorn from your own gunicorn config (README: 'With your own "
        "gunicorn config').", count)


def _warn_about_missing_hooks(gunicorn: GunicornServing) -> None:
    """One warning per common_api gunicorn hook the server's configuration leaves out."""
    from common_api.hook_audit import describe, missing_hooks

    if _HOOKS_AUDITED.is_set():
        return
    _HOOKS_AUDITED.set()
    for hook in missing_hooks(gunicorn.settings):
        startup_log.warn(log, "%s", describe(hook))


def _warn_about_script_imports(entries: tuple[str, ...]) -> None:
    """One warning naming each allowed import that grants scripts nothing, and why."""
    from common_api.sandbox.imports import grant, problems_message

    message = problems_message(grant(entries).problems)
    if message is not None:
        startup_log.warn(log, "%s", message)


def setup_app(app: Flask) -> CommonApiState:
    """Validate configuration and build the app's services; idempotent per app."""
    extension = app.extensions.get(EXTENSION_KEY)
    if not isinstance(extension, CommonApi):
        extension = CommonApi()
        extension.app = app
        app.extensions[EXTENSION_KEY] = extension
    if extension.state is not None:
        return extension.state
    settings = _settings_of(app, extension)
    coordination = coordination_for(settings.state_dir)
    gunicorn = gunicorn_serving()
    _check_the_setup(app, settings, coordination, gunicorn)
    metrics = _metrics_of(app, settings, coordination)
    available = [endpoint for endpoint in ENDPOINTS
                 if endpoint.name not in settings.disabled_endpoints]
    state = CommonApiState(
        settings=settings,
        access=AccessPolicy(settings.token, settings.trust_loopback,
                            settings.health_public, settings.allowed_hosts),
        environment=EnvironmentService(settings.env_secret_pattern,
                                       _mask_secrets(settings)),
        loglevels=LogLevelService(coordination.level_publisher()),
        threads=ThreadDumpService(),
        tasks=TaskDumpService(),
        periodic=metrics.periodic,
        metrics=metrics.service,
        exporter=metrics.exporter,
        registry=metrics.registry,
        coordination=coordination,
        profiler=Profiler(settings.profile_max_seconds, config.PROFILE_MAX_SECONDS,
                          coordination.window_lock, coordination.peer_windows(),
                          start_recorder(settings.profile_history_seconds),
                          settings.profile_history_seconds,
                          config.PROFILE_HISTORY_SECONDS, coordination.peer_histories()),
        request_metrics=metrics.request_metrics,
        middleware=metrics.middleware,
        gunicorn_seen=gunicorn is not None,
        enabled=tuple(endpoint for endpoint in available if _switched_on(endpoint, settings)),
        switched_off=tuple(endpoint for endpoint in available
                           if not _switched_on(endpoint, settings)),
    )
    if metrics.host_exporter is not None:
        _adopt_host_exporter(state, metrics.host_exporter)
    extension.state = state
    return state


def _settings_of(app: Flask, extension: CommonApi) -> config.Settings:
    """The validated settings, written back to ``app.config`` as read (the token aside)."""
    try:
        settings = config.resolve(app.config, overrides=extension.overrides)
        check_script_settings(settings.script_host_packages, settings.script_user)
    except ValueError as exc:
        raise ConfigurationError(f"common_api configuration error: {exc}") from None
    for key, value in settings.items():
        if key != config.TOKEN:  # a token read from a file stays out of the app's config
            app.config.setdefault(key, value)
    if not hasattr(app, "state"):
        app.state = SimpleNamespace()  # type: ignore[attr-defined]
    return settings


def _check_the_setup(app: Flask, settings: config.Settings, coordination: Coordination,
                     gunicorn: GunicornServing | None) -> None:
    """Say once, at start, what is half set up (README "What changes in your service")."""
    _warn_about_script_imports(settings.script_allowed_imports)
    if gunicorn is None or gunicorn.speaks:  # one process speaks for the server
        config.warn_unknown_keys(app.config)
    if gunicorn is None:
        return
    coordination.expect_workers(gunicorn.workers)
    if not gunicorn.speaks:
        return
    if not coordination.shared and gunicorn.workers > 1:
        _warn_multiworker_without_state(gunicorn.workers)
    elif coordination.shared:
        _warn_about_missing_hooks(gunicorn)


@dataclass
class _AppMetrics:
    registry: CollectorRegistry
    exporter: PrometheusMetrics
    host_exporter: HostExporter | None
    request_metrics: RequestMetrics | None
    middleware: RequestMetricsMiddleware | None
    periodic: PeriodicStatusService
    service: MetricsService


def _metrics_of(app: Flask, settings: config.Settings, coordination: Coordination
                ) -> _AppMetrics:
    """The app's own registry and request series, and the /metrics service over every
    source (the coordination's, the periodic threads')."""
    registry = CollectorRegistry(auto_describe=True)
    exporter = PrometheusMetrics.for_app_factory(
        registry=registry, path=None, export_defaults=False, group_by="endpoint")
    Gauge("common_api_info", "Version of the common_api blueprint", ["version"],
          registry=registry, multiprocess_mode="max").labels(__version__).set(1)
    host_exporter = find_host_exporter(app, exporter)
    request_metrics = middleware = None
    ordinal = 0
    if settings.metrics_instrument_requests and not (
            host_exporter is not None and host_exporter.records_requests):
        label, ordinal = _request_series_label(app) if coordination.shared else (None, 0)
        request_metrics = RequestMetrics(registry, app_label=label)
        middleware = _instrument_requests(app, request_metrics)
    periodic = PeriodicStatusService(coordination.statuses, coordination.worker_count,
                                     lambda: [*coordination.worker_problems(), *features_off()],
                                     coordination.booting_count)
    sources = coordination.metric_sources(registry, settings.metrics_peer_timeout)
    if coordination.shared and request_metrics is not None:
        # every app of the process writes to the same files: show this app's series only
        sources = [AppRequestSeries(source, request_metrics.family_names,
                                    request_metrics.app_label) for source in sources]
    service = MetricsService([*sources, PeriodicThreadCollector(periodic)],
                             coordination.baseline_store(ordinal))
    return _AppMetrics(registry, exporter, host_exporter, request_metrics, middleware,
                       periodic, service)


def _switched_on(endpoint: Endpoint, settings: config.Settings) -> bool:
    return endpoint.enabled_by is None or bool(settings[endpoint.enabled_by])


def _adopt_host_exporter(state: CommonApiState, host: HostExporter) -> None:
    """Share the exposition with the host's prometheus-flask-exporter: when it records
    requests, its request series are the app's (common_api records none of its own, so
    each request is counted once), and its registry is scraped too."""
    state.host_exporter = host
    state.exporter = host.exporter
    if host.records_requests and state.middleware is not None:
        state.middleware.metrics = None
        if state.request_metrics is not None:
            state.request_metrics.withdraw()
            state.request_metrics = None
    if not state.coordination.shared and host.exporter.registry is not REGISTRY:
        state.metrics.add_source(host.exporter.registry)


def _report_clashes(state: CommonApiState, clashes: list[RouteClash]) -> None:
    for clash in clashes:
        if clash.key not in state.reported_clashes:
            state.reported_clashes.add(clash.key)
            startup_log.warn(log, "%s", clash.message())


def _share_route(app: Flask, state: CommonApiState, blueprint: str) -> None:
    shared = share_exporter_route(app, f"{blueprint}.metrics")
    if shared:
        startup_log.warn(
            log, "common_api: prometheus-flask-exporter found on app %r: %s serves "
            "common_api's exposition, which includes the exporter's series%s", app.name,
            ", ".join(shared),
            "" if state.request_metrics is not None
            else "; requests are counted by the exporter only")


def _before_first_request(app: Flask, state: CommonApiState, blueprint: str
                          ) -> Callable[[dict[str, Any]], None]:
    """What the host may have set up after registering the blueprint."""

    def check(environ: dict[str, Any]) -> None:
        if state.host_exporter is None:
            late = find_host_exporter(app, state.exporter)
            if late is not None:
                _adopt_host_exporter(state, late)
        if state.host_exporter is not None:
            _share_route(app, state, blueprint)
        _report_clashes(state, route_clashes(app, blueprint))
        if not state.coordination.shared and not state.gunicorn_seen and \
                environ.get("wsgi.multiprocess") and "gunicorn.socket" in environ:
            _warn_multiworker_without_state(None)

    return check


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
    state.claims.add(prefix, (*state.enabled, *state.switched_off))


def finish_registration(setup_state: BlueprintSetupState) -> None:
    """After the blueprint's routes are on the app: answer 404 and 405 under the blueprint's
    rules in its own forms instead of HTML pages, and leave every other path to the host."""
    app = setup_state.app
    if not isinstance(app, Flask):
        return
    for code in (404, 405):
        app.register_error_handler(code, _scoped_http_error(app, code))
    state = get_state(app)
    try:
        if state.host_exporter is not None:
            _share_route(app, state, setup_state.name)
        _report_clashes(state, route_clashes(app, setup_state.name))
    except Exception:  # a check must never stop the host from starting
        log.exception("common_api: could not check the app's routes")
    app.wsgi_app = BeforeFirstRequest(  # type: ignore[method-assign]
        app.wsgi_app, _before_first_request(app, state, setup_state.name))


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


def _scoped_http_error(app: Flask, code: int) -> Any:
    # the host's own handler for the code, which the blueprint's takes the place of
    fallback = compat_flask.code_handler(app, code) if compat_flask.HOST_HANDLERS else None

    def handle(error: HTTPException) -> Any:
        state = get_state(current_app)
        if isinstance(error, MethodNotAllowed):
            owner = _owner_of_rule(state, error)
        else:
            owner = state.claims.owner(request.path)
        if owner is None:
            host_handler = fallback or (compat_flask.class_handler(app, error)
                                        if compat_flask.HOST_HANDLERS else None)
            return host_handler(error) if host_handler is not None else error
        status = error.code or code
        reason = "Not found" if status == 404 else "Method not allowed"
        message = f"{reason}: {request.method} {request.path}"
        if status == 404 and owner in state.switched_off:
            message = owner.off_message(request.method, request.path)
        response = error_response(message, status, owner.json)
        if status == 405 and isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    return handle
