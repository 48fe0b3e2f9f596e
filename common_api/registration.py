"""What registering the blueprint does to an app: validate the settings, build the app's
services, say once what is half set up, mount the enabled endpoints, and answer 404 and 405
under the blueprint's paths in its own forms."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, got_request_exception, request
from flask.sansio.blueprints import BlueprintSetupState
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from common_api import __version__, config, startup_log
from common_api.compat import flask as compat_flask
from common_api.compat import problems as features_off
from common_api.coordination import Coordination, coordination_for
from common_api.endpoints import ENDPOINTS, Endpoint
from common_api.errors import ConfigurationError
from common_api.extension import EXTENSION_KEY, CommonApi, CommonApiState, get_state
from common_api.host_setup import (
    BeforeFirstRequest,
    GunicornServing,
    HostExporter,
    RouteClash,
    exporter_paths,
    find_host_exporter,
    gunicorn_serving,
    route_clashes,
    share_exporter_route,
)
from common_api.sandbox.setting_checks import check_script_settings
from common_api.services.access import AccessPolicy
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
from common_api.services.recorder import start_recorder
from common_api.services.tasks import TaskDumpService
from common_api.services.threads import ThreadDumpService
from common_api.web.responses import error_response, stamp

if TYPE_CHECKING:
    from common_api.hook_audit import Hook

log = logging.getLogger(__name__)


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


def _warn_about_missing_hooks(missing: list[Hook]) -> None:
    """One warning per common_api gunicorn hook the server's configuration leaves out."""
    from common_api.hook_audit import describe

    if _HOOKS_AUDITED.is_set():
        return
    _HOOKS_AUDITED.set()
    for hook in missing:
        startup_log.warn(log, "%s", describe(hook))


def _warn_about_script_imports(entries: tuple[str, ...]) -> None:
    """One warning naming each allowed import that grants scripts nothing, and why."""
    from common_api.sandbox.imports import grant, problems_message

    message = problems_message(grant(entries).problems)
    if message is not None:
        startup_log.warn(log, "%s", message)


def _mask_secrets(settings: config.Settings) -> bool:
    """Secrets are shown only when asked for and only to token holders."""
    if settings.env_mask_secrets:
        return True
    if settings.token is None:
        startup_log.warn(log, "%s=false is ignored without %s: /env keeps masking secrets",
                         config.ENV_MASK_SECRETS, config.TOKEN)
        return True
    return False


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
    from common_api.hook_audit import missing_hooks

    missing = missing_hooks(gunicorn.settings)
    # without common_api's post_worker_init no worker becomes one its siblings list
    coordination.expect_workers(
        gunicorn.workers, register=all(hook.name != "post_worker_init" for hook in missing))
    if not gunicorn.speaks:
        return
    if not coordination.shared and gunicorn.workers > 1:
        _warn_multiworker_without_state(gunicorn.workers)
    elif coordination.shared:
        _warn_about_missing_hooks(missing)


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
    own = [rule.rule for rule in app.url_map.iter_rules(f"{blueprint}.metrics")]
    for path in exporter_paths(app):
        key = ("exporter route", path, "")
        if own and key not in state.reported_clashes:
            state.reported_clashes.add(key)
            startup_log.warn(
                log, "common_api: prometheus-flask-exporter serves %s on app %r without "
                "common_api's series (common_api_healthy, common_api_workers, the periodic "
                "threads'): scrape %s, which has the exporter's series too (deploy/'s "
                "configs and alert rules need it)", path, app.name, own[0])


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
        return stamp(response)

    return handle
