"""Per-app wiring: the extension object and the services it holds.

One :class:`CommonApi` per app, at ``app.extensions["common_api"]``, in the Flask manner
(``CommonApi(app, **settings)`` or ``init_app``; registering ``bp`` makes one). It holds the
app's services (``CommonApiState``, built by ``common_api.registration``), so two apps in one
process share nothing but what is truly process-wide (the logging tree, the periodic-thread
registry, prometheus_client's default registry, a server's worker runtime).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics

from common_api import config
from common_api.coordination import Coordination
from common_api.endpoints import ENDPOINTS, Endpoint, PathClaims
from common_api.host_setup import HostExporter
from common_api.services.access import AccessPolicy
from common_api.services.audit import AuditLog
from common_api.services.environment import EnvironmentService
from common_api.services.http_metrics import RequestMetrics, RequestMetricsMiddleware
from common_api.services.loglevels import LogLevelService
from common_api.services.metrics import MetricsService
from common_api.services.periodic_status import PeriodicStatusService
from common_api.services.profiler import Profiler
from common_api.services.recorder import release_recorder
from common_api.services.tasks import TaskDumpService
from common_api.services.threads import ThreadDumpService
from common_api.web.openapi import build_openapi

if TYPE_CHECKING:
    from common_api.sandbox import ScriptRunner

EXTENSION_KEY = "common_api"


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
                self._openapi = build_openapi(self.enabled, self.settings)
        return {**self._openapi, "servers": [{"url": base or "/"}]}


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
