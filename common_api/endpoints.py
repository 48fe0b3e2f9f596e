"""The endpoints of common_api, one row each: the facts every other part reads.

The blueprint registers a route for each enabled row and nothing else, the access check
asks a row whether a request is guarded, the audit hook whether it changes state and under
which event, the 404/405 handlers which paths are the blueprint's and in which form to
answer, ``COMMON_API_DISABLED_ENDPOINTS`` which names exist, and ``/openapi.json`` which
paths to describe. Adding an endpoint is one row here, its view (``@view(name)`` in
``common_api.blueprint``) and its path in ``common_api/openapi.json``; tests/test_endpoints.py
checks that the three agree.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from common_api import setting_keys as keys

# a request with these methods is answered by Flask itself (automatic OPTIONS), never by a view
_ANSWERED_BY_FLASK = frozenset({"OPTIONS"})
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
MULTIPART_ENVELOPE = 64 * 1024


def segments(path: str) -> tuple[str, ...]:
    """The path's segments: ``/ops/metrics/`` is ``("ops", "metrics")``."""
    return tuple(part for part in path.strip("/").split("/") if part)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of the blueprint.

    ``guarded``: without a token, only local programs may call it, whatever the request
    says. ``audit_event``: the endpoint changes state, and each call is audited under this
    event; such a call is guarded too. ``changes_state_with``: it changes state (and is
    guarded and audited) only when this parameter is given, otherwise it is a read.
    ``audit_params``: (record key, parameter) pairs whose values the audit record carries.
    ``form_params``: the parameters a POST may send as a form as well as in the query.
    ``body_limit``: the setting that bounds the request body, plus ``body_envelope`` bytes
    of multipart framing around an upload. ``public_health``: the probe endpoint that
    ``COMMON_API_HEALTH_PUBLIC`` opens. ``public``: answers everyone, token or not, because
    it holds no data (the operator's page, whose own requests go through the policy).
    ``enabled_by``: the true/false setting that must be true for the endpoint to be served;
    off, its path answers 404 with ``off_message`` and ``/openapi.json`` leaves it out.
    ``risk``: what turning it on means, for that message.
    """

    name: str
    rule: str
    methods: tuple[str, ...]
    json: bool
    guarded: bool = False
    audit_event: str | None = None
    changes_state_with: str | None = None
    audit_params: tuple[tuple[str, str], ...] = ()
    form_params: tuple[str, ...] = ()
    body_limit: str = keys.MAX_BODY_BYTES
    body_envelope: int = 0
    public_health: bool = False
    public: bool = False
    enabled_by: str | None = None
    risk: str = ""
    static_segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        static = self.rule.split("<", 1)[0]
        object.__setattr__(self, "static_segments", segments(static))

    @property
    def openapi_path(self) -> str:
        """The rule as OpenAPI writes it: ``/periodic-threads/{thread_name}``."""
        return _VARIABLE.sub(r"{\1}", self.rule)

    def off_message(self, method: str, path: str) -> str:
        """The 404 answer of an endpoint that ``enabled_by`` leaves off."""
        return (f"Not found: {method} {path} is disabled on this component. {self.risk}, so it "
                f"is off unless the operator sets {self.enabled_by}=true (app config or "
                "environment).")

    def changes_state(self, method: str, params: Container[str]) -> bool:
        if self.audit_event is None or method in _ANSWERED_BY_FLASK:
            return False
        return self.changes_state_with is None or self.changes_state_with in params

    def is_guarded(self, method: str, params: Container[str]) -> bool:
        if method in _ANSWERED_BY_FLASK:
            return False
        return self.guarded or self.changes_state(method, params)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("env", "/env", ("GET",), json=True, guarded=True),
    Endpoint("loglevel", "/loglevel", ("GET", "POST"), json=False,
             audit_event="loglevel.set", changes_state_with="level",
             form_params=("logger_name", "level", "duration", "format"),
             audit_params=(("logger", "logger_name"), ("level", "level"),
                           ("duration", "duration"))),
    Endpoint("metrics", "/metrics", ("GET",), json=False),
    Endpoint("reset_metrics", "/metrics/reset", ("POST",), json=False,
             audit_event="metrics.reset"),
    Endpoint("threads", "/threads", ("GET",), json=False),
    Endpoint("tasks", "/tasks", ("GET",), json=False),
    Endpoint("periodic_threads", "/periodic-threads", ("GET",), json=True),
    Endpoint("periodic_thread", "/periodic-threads/<path:thread_name>", ("GET",), json=True),
    Endpoint("periodic_threads_health", "/periodic-threads-health", ("GET",), json=True,
             public_health=True),
    Endpoint("run_script", "/run_script", ("POST",), json=False, audit_event="script.run",
             body_limit=keys.SCRIPT_MAX_BYTES, body_envelope=MULTIPART_ENVELOPE,
             enabled_by=keys.SCRIPT_ENABLED,
             risk="It runs Python code sent by the caller inside the component (in a sandbox)"),
    Endpoint("openapi", "/openapi.json", ("GET",), json=True),
    Endpoint("ui", "/ui", ("GET",), json=False, public=True),
    Endpoint("profile", "/profile", ("GET",), json=False),
    # guarded: a memory window slows the whole host while it runs
    Endpoint("memory", "/memory", ("GET",), json=False, guarded=True),
)
BY_NAME: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in ENDPOINTS}


def _spelling(text: str) -> str:
    return text.strip().strip("/").replace("-", "_").lower()


def lookup(spelling: str) -> Endpoint | None:
    """The endpoint an operator means by its name or its path (``run_script``,
    ``/metrics/reset``, ``periodic-threads/{thread_name}``), or None."""
    wanted = _spelling(spelling)
    for endpoint in ENDPOINTS:
        if wanted in {endpoint.name, _spelling(endpoint.rule), _spelling(endpoint.openapi_path)}:
            return endpoint
    return None


@dataclass(frozen=True)
class Mount:
    """An endpoint as registered on one app: its path segments below the url_prefix."""

    endpoint: Endpoint
    segments: tuple[str, ...]


class PathClaims:
    """Which endpoint of the blueprint a path falls under, judged by whole path segments.

    ``/metrics/x`` is under ``/metrics``; ``/metrics-dashboard`` and ``/threadsafe/x`` are
    not, so a host's own routes and error handlers keep those.
    """

    def __init__(self) -> None:
        self._mounts: list[Mount] = []

    def add(self, prefix: str, endpoints: Iterable[Endpoint]) -> None:
        base = segments(prefix)
        for endpoint in endpoints:
            if endpoint.static_segments:
                self._mounts.append(Mount(endpoint, base + endpoint.static_segments))
        self._mounts.sort(key=lambda mount: len(mount.segments), reverse=True)

    def owner(self, path: str) -> Endpoint | None:
        """The endpoint whose rule the path lies under (the most specific), or None."""
        parts = segments(path)
        for mount in self._mounts:
            if parts[:len(mount.segments)] == mount.segments:
                return mount.endpoint
        return None
