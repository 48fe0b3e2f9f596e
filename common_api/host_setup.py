"""What a host app already has that the blueprint must live with: checks at registration
and before the first request.

Hosts come with habits: prometheus-flask-exporter's ``PrometheusMetrics(app)``, their own
``/env`` or ``/metrics`` route, plain ``gunicorn -w 4`` without common_api's config
module. Each of these used to break something silently (a second copy of every request
series, a route that never answers, numbers that jump between workers). This module
finds them; ``extension`` decides what to do and says so in the log.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from common_api.compat import werkzeug as compat_werkzeug
from common_api.compat.flask_exporter import EXPORTER_ENDPOINT, HOST_EXPORTER, closure_self

log = logging.getLogger("common_api")

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class HostExporter:
    """A ``PrometheusMetrics`` the host bound to the app itself."""

    exporter: PrometheusMetrics
    records_requests: bool  # its default request series (before/after-request hooks)


def find_host_exporter(app: Flask, own: PrometheusMetrics | None) -> HostExporter | None:
    """The host's prometheus-flask-exporter on ``app`` (found by its hooks and its
    ``/metrics`` view), other than ``own``."""
    if not HOST_EXPORTER:
        return None
    recording = None
    for hook in app.after_request_funcs.get(None, ()):
        candidate = closure_self(hook)
        if isinstance(candidate, PrometheusMetrics) and candidate is not own:
            recording = candidate
            break
    if recording is not None:
        return HostExporter(recording, True)
    view = app.view_functions.get(EXPORTER_ENDPOINT)
    candidate = closure_self(view)
    if isinstance(candidate, PrometheusMetrics) and candidate is not own:
        return HostExporter(candidate, False)
    return None


def share_exporter_route(app: Flask, own_endpoint: str) -> list[str]:
    """Point the exporter's route at ``own_endpoint`` where both serve one path (whichever
    of the two rules werkzeug matches first then gives the one exposition, with the
    blueprint's access checks). Returns the paths that were shared."""
    if not compat_werkzeug.REPOINT:
        return []
    own_paths = {rule.rule for rule in app.url_map.iter_rules(own_endpoint)}
    shared = []
    for rule in list(app.url_map.iter_rules()):
        if rule.endpoint == EXPORTER_ENDPOINT and rule.rule in own_paths:
            compat_werkzeug.repoint(app.url_map, rule, own_endpoint)
            shared.append(rule.rule)
    return shared


def exporter_paths(app: Flask) -> list[str]:
    """The paths the host's prometheus-flask-exporter serves on its own (not shared)."""
    return [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == EXPORTER_ENDPOINT]


def _path_methods(rule: Rule) -> frozenset[str]:
    return frozenset(rule.methods or ()) - _IGNORED_METHODS


def _standalone_map(rules: Iterable[Rule]) -> Map:
    return Map([rule.empty() for rule in rules], strict_slashes=False)


def _matches(url_map: Map, path: str, methods: frozenset[str]) -> Rule | None:
    adapter = url_map.bind("localhost")
    for method in sorted(methods):
        try:
            rule, _ = adapter.match(path, method, return_rule=True)
        except HTTPException:
            continue
        return rule
    return None


@dataclass(frozen=True)
class RouteClash:
    """A host route and a blueprint route that answer the same path and method."""

    path: str
    methods: frozenset[str]
    host: Rule
    own: Rule
    host_wins: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return self.path, str(self.host.endpoint), str(self.own.endpoint)

    def message(self) -> str:
        methods = ",".join(sorted(self.methods))
        host = f"the host's route {self.host.rule} (endpoint {self.host.endpoint!r})"
        own = f"common_api's {self.own.rule} ({self.own.endpoint!r})"
        if self.host_wins:
            outcome = f"{host} answers and {own} is never reached"
        else:
            outcome = f"{own} answers and {host} is never reached"
        return (f"common_api: route clash on {methods} {self.path}: {outcome}. Register the "
                "blueprint under a prefix (app.register_blueprint(bp, url_prefix='/ops')) or "
                "move the host's route")


def route_clashes(app: Flask, blueprint: str) -> list[RouteClash]:
    """Every static host route whose path one of the blueprint's rules also answers, for a
    common method. (A host's dynamic rule, such as a catch-all, is not a clash: the
    blueprint's static paths are more specific and the host's rule still serves the rest.)"""
    prefix = f"{blueprint}."
    own = [rule for rule in app.url_map.iter_rules() if str(rule.endpoint).startswith(prefix)]
    host = [rule for rule in app.url_map.iter_rules()
            if not str(rule.endpoint).startswith(prefix) and not rule.arguments
            and rule.endpoint != "static"]
    if not own or not host:
        return []
    own_map = _standalone_map(own)
    winners = app.url_map.bind("localhost")
    clashes: dict[tuple[str, str, str], RouteClash] = {}
    for host_rule in host:
        methods = _path_methods(host_rule)
        matched = _matches(own_map, host_rule.rule, methods)
        if matched is None:
            continue
        overlap = methods & _path_methods(matched)
        own_rule = next((rule for rule in own if rule.endpoint == matched.endpoint
                         and _path_methods(rule) & overlap), None)
        if own_rule is None or not overlap:
            continue
        try:
            winner, _ = winners.match(host_rule.rule, sorted(overlap)[0], return_rule=True)
        except HTTPException:
            continue
        clash = RouteClash(host_rule.rule, overlap, host_rule, own_rule,
                           host_wins=winner.endpoint == host_rule.endpoint)
        clashes.setdefault(clash.key, clash)
    return list(clashes.values())


@dataclass(frozen=True)
class GunicornServing:
    """gunicorn loading the app: its settings (``gunicorn.config.Config``), and whether this
    process speaks for the server (the master with ``--preload``, else the first worker it
    booted)."""

    settings: Any
    speaks: bool

    @property
    def workers(self) -> int:
        return int(self.settings.workers)


def gunicorn_serving() -> GunicornServing | None:
    """When the app is being loaded by gunicorn, what it says of the server (read once from
    its frames); None outside gunicorn or when they do not say."""
    if "gunicorn" not in sys.modules:
        return None
    try:
        from common_api.compat.gunicorn import serving_config

        found = serving_config()
    except Exception:  # an unexpected gunicorn: no checks rather than no start
        log.debug("common_api: could not read gunicorn's settings", exc_info=True)
        return None
    return None if found is None else GunicornServing(*found)


class BeforeFirstRequest:
    """Runs ``check`` once per process, before the first request reaches the app (the
    host's setup is complete by then: Flask refuses new routes and hooks after it), then
    only forwards."""

    def __init__(self, app: WSGIApp, check: Callable[[dict[str, Any]], None]) -> None:
        self.app = app
        self._check: Callable[[dict[str, Any]], None] | None = check
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if self._check is not None:
            with self._lock:
                if self._check is not None:
                    try:
                        self._check(environ)
                    except Exception:
                        log.exception("common_api: start-up check failed")
                    finally:
                        self._check = None
        return self.app(environ, start_response)
