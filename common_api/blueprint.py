"""The blueprint: thin views that parse, authorise, call a service and render.

Registering ``bp`` on an app builds that app's services (see ``extension.setup_app``) and
adds a route for each row of the endpoint table (``common_api.endpoints``) that the app has
not disabled, with the view ``@view(name)`` marks here. The hooks below read the same row
for the access check, the body limit and the audit record. Text endpoints answer errors as
plain text, JSON endpoints as ``{"error": ...}``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from common_api import __version__, config
from common_api.endpoints import BY_NAME, Endpoint
from common_api.errors import ApiError, InvalidInput, PayloadTooLarge
from common_api.extension import (
    CommonApiState,
    finish_registration,
    get_state,
    json_response,
    mount_endpoints,
    setup_app,
    text_response,
)
from common_api.services.access import Caller, bearer_token, is_proxied, token_fingerprint
from common_api.services.loglevels import render_levels
from common_api.services.threads import group_threads, render_dump, render_groups
from common_api.workers.dumps import merge_workers, render_all_workers, render_all_workers_json

bp = Blueprint("common_api", __name__)

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
MAX_THREAD_ID = 2**63 - 1
# the view of each row of common_api.endpoints, by name; routes are added at registration
VIEWS: dict[str, Callable[..., Response]] = {}
# an endpoint the table does not know is treated as the most guarded kind
_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
_UNKNOWN = Endpoint("unknown", "/", ("GET",), json=False, guarded=True)


def view(name: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Make the function the view of the table's endpoint ``name``."""
    if name not in BY_NAME:
        raise KeyError(f"{name!r} is not in common_api.endpoints.ENDPOINTS")

    def register(function: Callable[..., Response]) -> Callable[..., Response]:
        VIEWS[name] = function
        return function

    return register


@bp.record_once
def _on_register(setup_state: BlueprintSetupState) -> None:
    app = setup_state.app
    if not isinstance(app, Flask):
        raise TypeError("common_api.bp can only be registered on a flask.Flask app")
    setup_app(app)


def _state() -> CommonApiState:
    return get_state(current_app)


def _endpoint() -> Endpoint:
    return _state().endpoint_of(request.endpoint) or _UNKNOWN


def _params() -> MultiDict[str, str]:
    """The request's parameters: its query string, and the form of a POST that takes one."""
    known = _endpoint().form_params
    if request.method != "POST" or not known:
        return request.args
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        raise PayloadTooLarge("Request body is larger than "
                              f"{_state().settings[_endpoint().body_limit]} bytes") from None
    if request.mimetype in _FORM_TYPES and (request.content_length or 0) > 0 and \
            not form and not files:
        raise InvalidInput(f"The request body is not a valid {request.mimetype} form")
    for name in [*form, *files]:
        if name not in known:
            raise InvalidInput(f"Unknown form field {name[:64]!r}; known: {', '.join(known)}")
        if name in request.args:
            raise InvalidInput(f"Parameter {name[:64]!r} is given both in the query string and "
                               "in the form; send it once")
    return request.values


def _caller() -> Caller:
    headers = request.headers
    return Caller(request.remote_addr, headers.get("Authorization"), host=headers.get("Host"),
                  scheme=request.scheme, origin=headers.get("Origin"),
                  fetch_site=headers.get("Sec-Fetch-Site"), referer=headers.get("Referer"),
                  proxied=is_proxied(headers.keys()))


def _wants_json() -> bool:
    fmt = _params().get("format")
    if fmt is not None:
        if fmt not in {"json", "text"}:
            raise InvalidInput(f"Invalid format: {fmt}. Valid values: json, text")
        return fmt == "json"
    best = request.accept_mimetypes.best_match(["text/plain", "application/json"])
    return best == "application/json"


_text = text_response
_json = json_response


def _flag(name: str) -> bool:
    value = request.args.get(name)
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidInput(f"Invalid value for {name}: {value}. Valid values: true, false, 1, 0, "
                       "yes, no")


@bp.before_request
def _authorize_and_limit() -> None:
    state = _state()
    endpoint = _endpoint()
    limit = state.settings[endpoint.body_limit]
    if (request.content_length or 0) > limit + endpoint.body_envelope:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    request.max_content_length = limit + endpoint.body_envelope
    params = _params()
    state.access.check(_caller(), guarded=endpoint.is_guarded(request.method, params),
                       health=endpoint.public_health)
    max_query = state.settings[config.MAX_QUERY_LENGTH]
    for name, value in params.items(multi=True):
        if len(value) > max_query or len(name) > max_query:
            raise InvalidInput(f"Query parameter {name[:64]!r} is longer than {max_query} "
                               "characters")
    if state.runtime is not None:
        state.runtime.ensure_started()


@bp.after_request
def _common_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Worker-Pid"] = str(os.getpid())
    response.headers["X-Common-Api-Version"] = __version__
    endpoint = _endpoint()
    if endpoint.audit_event is None:
        return response
    try:
        params = _params()
    except ApiError:  # a body too large to read: its query string still says what was asked
        params = request.args
    if endpoint.changes_state(request.method, params):
        details = {key: params.get(name) for key, name in endpoint.audit_params}
        if "Origin" in request.headers:
            details["origin"] = request.headers["Origin"][:200]
        details.update(g.get("audit_details", {}))
        _state().audit.record(
            endpoint.audit_event, client=request.remote_addr, status=response.status_code,
            token=token_fingerprint(bearer_token(request.headers.get("Authorization"))),
            **details)
    return response


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    message = str(error)
    try:
        as_json = _endpoint().json or _wants_json()
    except ApiError:
        as_json = False
    response = (_json({"error": message}, error.status) if as_json
                else _text(message, error.status))
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="common_api"'
    return response


@view("env")
def env() -> Response:
    return _json(_state().environment.snapshot())


@view("loglevel")
def loglevel() -> Response:
    """GET as the seed shows; POST takes the same parameters from the form or the query."""
    service = _state().loglevels
    params = _params()
    name = params.get("logger_name")
    level = params.get("level")
    duration = params.get("duration")
    as_json = _wants_json()
    if duration is not None and level is None:
        raise InvalidInput("The duration parameter needs level and logger_name: "
                           "/loglevel?logger_name=NAME&level=LEVEL&duration=SECONDS")
    if level is not None:
        if name is None:
            raise InvalidInput("The level parameter needs logger_name: "
                               "/loglevel?logger_name=NAME&level=LEVEL")
        change = service.set_level(name, level, duration)
        return _json(change.to_dict()) if as_json else _text(change.render())
    if name is not None:
        entry = service.get_level(name)
        return _json(entry.to_dict()) if as_json else _text(entry.render())
    levels = service.list_levels()
    if as_json:
        return _json({"loggers": [entry.to_dict() for entry in levels]})
    return _text(render_levels(levels))


@view("metrics")
def metrics() -> Response:
    body, content_type = _state().metrics.exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type)


@view("reset_metrics")
def reset_metrics() -> Response:
    _state().metrics.reset()
    return _text("ok")


@view("threads")
def threads() -> Response:
    name = request.args.get("name")
    raw_ident = request.args.get("thread_id")
    scope = request.args.get("scope", "worker")
    if scope not in {"worker", "all"}:
        raise InvalidInput(f"Invalid scope: {scope}. Valid values: worker, all")
    ident = None
    if raw_ident is not None:
        digits = raw_ident.strip()
        if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_THREAD_ID:
            raise InvalidInput(f"Invalid thread_id: {raw_ident} (expected an integer from 0 to "
                               f"{MAX_THREAD_ID})")
        ident = int(digits)
    as_json = _wants_json()
    grouped = _flag("group")
    state = _state()
    dump = state.threads.dump(name=name, ident=ident)
    peers = state.runtime.peer_dumps() if scope == "all" and state.runtime is not None else {}
    if grouped:
        members = merge_workers(os.getpid(), dump, peers) if scope == "all" else dump
        groups = group_threads(members)
        if as_json:
            return _json({"pid": os.getpid(), "total": len(members),
                          "groups": [group.to_dict() for group in groups]})
        return _text(render_groups(groups))
    if scope == "all":
        if as_json:
            return _json(render_all_workers_json(os.getpid(), dump, peers))
        return _text(render_all_workers(os.getpid(), dump, peers))
    if as_json:
        return _json({"pid": os.getpid(), "total": len(dump),
                      "threads": [info.to_dict() for info in dump]})
    return _text(render_dump(dump))


@view("periodic_threads")
def periodic_threads() -> Response:
    return _json(_state().periodic.listing(
        level=request.args.get("level"),
        running_only=_flag("running_only"),
        active_only=_flag("active_only"),
    ))


@view("periodic_thread")
def periodic_thread(thread_name: str) -> Response:
    return _json(_state().periodic.describe(thread_name, os.getpid()))


@view("periodic_threads_health")
def periodic_threads_health() -> Response:
    health = _state().periodic.health()
    return _json(health, 200 if health["healthy"] else 503)


@view("run_script")
def run_script() -> Response:
    state = _state()
    limit = state.settings[config.SCRIPT_MAX_BYTES]
    try:
        upload = request.files.get("script")
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"Script upload is larger than {limit} bytes") from None
    if upload is None:
        raise InvalidInput("No script file provided")
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Script upload is larger than {limit} bytes")
    g.audit_details = {"sha256": hashlib.sha256(data).hexdigest()[:16], "bytes": len(data)}
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a script that cannot be read fails like one that cannot be parsed
        g.audit_details["error"] = "not UTF-8"
        return _text(f"Error executing script: Script is not valid UTF-8 (byte {exc.start})",
                     500)

    from common_api.sandbox import ScriptBusy, ScriptError

    started = time.monotonic()
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        outcome = state.scripts.run(source, app, client=request.remote_addr or "")
    except ScriptBusy as exc:
        return _text(str(exc), 429)
    except ScriptError as exc:
        g.audit_details["error"] = str(exc)[:200]
        return _text(f"Error executing script: {exc}", 500)
    finally:
        g.audit_details["duration"] = round(time.monotonic() - started, 3)
    return _text(outcome.render())


@view("openapi")
def openapi() -> Response:
    state = _state()
    return _json(state.openapi_document(request.script_root + state.url_prefix))


# after every view above: a route for each enabled endpoint, then the 404/405 handlers
bp.record(lambda setup_state: mount_endpoints(setup_state, VIEWS))
bp.record_once(finish_registration)
