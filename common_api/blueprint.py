"""The blueprint: thin views that parse, authorise, call a service and render.

Registering ``bp`` on an app builds that app's services (see ``registration.setup_app``) and
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
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
    default_exceptions,
)

from common_api import __version__
from common_api.endpoints import BY_NAME, Endpoint
from common_api.errors import ApiError, InvalidInput, PayloadTooLarge
from common_api.extension import CommonApi, CommonApiState, bp, get_state
from common_api.registration import finish_registration, mount_endpoints, setup_app
from common_api.services.access import Caller, bearer_token, is_proxied, token_fingerprint
from common_api.services.loglevels import render_levels
from common_api.services.metrics import compress
from common_api.services.profile_formats import render_collapsed, render_json, render_speedscope
from common_api.services.profiler import PROFILE_FORMATS, parse_flag
from common_api.services.sampling import Profile
from common_api.services.tasks import name_filter
from common_api.services.tasks_render import group_tasks, render_listing
from common_api.services.tasks_render import render_groups as render_task_groups
from common_api.services.tasks_workers import (
    AllWorkerTasks,
    render_all_worker_tasks,
    render_all_worker_tasks_json,
)
from common_api.services.threads import (
    AllWorkers,
    group_threads,
    render_all_workers,
    render_all_workers_json,
    render_dump,
    render_groups,
    select_threads,
)
from common_api.web.responses import (
    error_response,
    json_response,
    limit_request_body,
    stamp,
    text_response,
)

__all__ = ["CommonApi", "bp"]

MAX_THREAD_ID = 2**63 - 1
MISSING_WORKERS_HEADER = "X-Missing-Workers"  # pids whose live metrics a scrape lacks
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
        if not isinstance(name, str):  # a part whose name werkzeug could not read
            raise InvalidInput(f"A form field has no readable name; known: {', '.join(known)}")
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
    return parse_flag(request.args, name)


@bp.before_request
def _authorize_and_limit() -> None:
    state = _state()
    endpoint = _endpoint()
    limit = state.settings[endpoint.body_limit]
    if (request.content_length or 0) > limit + endpoint.body_envelope:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    limit_request_body(request, limit + endpoint.body_envelope)
    params = _params()
    if not endpoint.public:
        state.access.check(_caller(), guarded=endpoint.is_guarded(request.method, params),
                           health=endpoint.public_health)
    max_query = state.settings.max_query_length
    for name, value in params.items(multi=True):
        if len(value) > max_query or len(name) > max_query:
            raise InvalidInput(f"Query parameter {name[:64]!r} is longer than {max_query} "
                               "characters")
    state.coordination.ensure_started()


@bp.after_request
def _common_headers(response: Response) -> Response:
    if g.get("common_api_after_failed"):
        return response  # the 500 answer to this hook's own failure: no second traceback
    g.common_api_after_failed = True
    stamp(response)
    endpoint = _endpoint()
    if endpoint.audit_event is not None:
        _audit(endpoint.audit_event, endpoint, response)
    g.common_api_after_failed = False
    return response


def _audit(event: str, endpoint: Endpoint, response: Response) -> None:
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
            event, client=request.remote_addr, status=response.status_code,
            token=token_fingerprint(bearer_token(request.headers.get("Authorization"))),
            **details)


def _error_response(message: str, status: int) -> Response:
    """An error in the endpoint's format: ``{"error": ...}`` or one line of plain text."""
    try:
        as_json = _endpoint().json or _wants_json()
    except ApiError:
        as_json = False
    return error_response(message, status, as_json)


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    response = _error_response(str(error), error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="common_api"'
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    """Never an HTML page. An unhandled exception reaches here as InternalServerError after
    Flask has logged its traceback (once); the answer names only the exception's class."""
    status = error.code or 500
    if isinstance(error, InternalServerError):
        original = error.original_exception
        cause = f": {type(original).__name__}" if original is not None else ""
        message = f"Internal error{cause} (the traceback is in the component's log)"
    elif status in (404, 405):
        reason = "Not found" if status == 404 else "Method not allowed"
        message = f"{reason}: {request.method} {request.path}"
    else:
        message = f"{error.name}: {error.description}" if error.description else error.name
    return _error_response(" ".join(message.split()), status)


# by code too: a host's handler for a code (say 500) is found before any class handler
for _code in default_exceptions:
    bp.register_error_handler(_code, _http_error)


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
        if change.unacknowledged:
            g.audit_details = {"unacknowledged_workers": list(change.unacknowledged)}
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
    scrape = _state().metrics.scrape(request.headers.get("Accept"),
                                     request.args.getlist("name[]"))
    body, encoding = compress(scrape.body, request.headers.get("Accept-Encoding"))
    response = Response(body, content_type=scrape.content_type)
    missing = scrape.missing_header()
    if missing is not None:
        response.headers[MISSING_WORKERS_HEADER] = missing
    response.vary.add("Accept-Encoding")
    if encoding is not None:
        response.headers["Content-Encoding"] = encoding
    return response


@view("reset_metrics")
def reset_metrics() -> Response:
    _state().metrics.reset()
    return _text("ok")


def _scope() -> str:
    scope = request.args.get("scope", "worker")
    if scope not in {"worker", "all"}:
        raise InvalidInput(f"Invalid scope: {scope}. Valid values: worker, all")
    return scope


@view("threads")
def threads() -> Response:
    name = request.args.get("name")
    raw_ident = request.args.get("thread_id")
    scope = _scope()
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
    every = None
    if scope == "all":
        peers = state.coordination.peer_dumps()
        every = AllWorkers(os.getpid(), dump, peers).filtered(
            lambda threads: select_threads(threads, name, ident))
    if grouped:
        members = every.merged() if every is not None else dump
        groups = group_threads(members)
        if as_json:
            return _json({"pid": os.getpid(), "total": len(members),
                          "groups": [group.to_dict() for group in groups]})
        return _text(render_groups(groups))
    if every is not None:
        if as_json:
            return _json(render_all_workers_json(every))
        return _text(render_all_workers(every))
    if as_json:
        return _json({"pid": os.getpid(), "total": len(dump),
                      "threads": [info.to_dict() for info in dump]})
    return _text(render_dump(dump))


@view("tasks")
def tasks() -> Response:
    scope = _scope()
    as_json = _wants_json()
    grouped = _flag("group")
    keep = name_filter(request.args.get("name"))
    state = _state()
    listing = state.tasks.dump()
    every = None
    if scope == "all":
        every = AllWorkerTasks(os.getpid(), listing, state.coordination.peer_tasks()).filtered(keep)
    listing = listing.filtered(keep)
    if grouped:
        members = every.merged() if every is not None else listing.tasks()
        omitted = every.omitted() if every is not None else listing.omitted
        groups = group_tasks(members)
        if as_json:
            return _json({"pid": os.getpid(), "total": len(members), "tasks_omitted": omitted,
                          "groups": [group.to_dict() for group in groups]})
        return _text(render_task_groups(groups, omitted))
    if every is not None:
        if as_json:
            return _json(render_all_worker_tasks_json(every))
        return _text(render_all_worker_tasks(every))
    if as_json:
        return _json({"pid": os.getpid(), **listing.to_dict()})
    return _text(render_listing(listing))


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
    limit = state.settings.script_max_bytes
    try:
        upload = request.files.get("script")
    except RequestEntityTooLarge:
        if request.content_length is None or request.content_length > limit:
            raise PayloadTooLarge(f"Script upload is larger than {limit} bytes") from None
        raise PayloadTooLarge(  # not its size: the form's parts or its other fields
            f"Script upload has more than {request.max_form_parts} form parts, or fields "
            "besides the script larger than the form allows") from None
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

    from common_api.sandbox import ScriptBusy, ScriptError, ScriptUnavailable

    started = time.monotonic()
    writes: list[dict[str, str]] = []  # host attributes the script changed, for the audit
    g.audit_details["writes"] = writes
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        outcome = state.scripts.run(source, app, client=request.remote_addr or "",
                                    writes=writes)
    except ScriptBusy as exc:
        return _text(str(exc), 429)
    except ScriptUnavailable as exc:  # the script did not run: this endpoint cannot work here
        g.audit_details["error"] = str(exc)[:200]
        return _text(f"Scripts cannot run on this component: {exc}", 503)
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


_PROFILE_MEDIA = {"text/plain": "collapsed", "application/json": "json",
                  "image/svg+xml": "svg"}


def _profile_format() -> str:
    fmt = request.args.get("format")
    if fmt is None:
        return _PROFILE_MEDIA.get(request.accept_mimetypes.best_match(list(_PROFILE_MEDIA)) or "",
                                  "collapsed")
    if fmt not in PROFILE_FORMATS:
        raise InvalidInput(f"Invalid format: {fmt}. Valid values: {', '.join(PROFILE_FORMATS)}")
    return fmt


def _profile_response(result: Profile, fmt: str, recorded: bool = False) -> Response:
    workers = sum(1 for frame in result.frames if frame.kind == "worker")
    whose = f"{workers} workers" if workers else f"pid {os.getpid()}"
    title = (f"CPU profile of {whose}: {result.samples} samples over "
             f"{result.duration:.1f} s at {result.rate:.1f} Hz"
             + (" (from the history: the last "
                f"{result.duration:.1f} s)" if recorded else ""))
    if fmt == "json":
        response = _json(render_json(result))
    elif fmt == "speedscope":
        response = _json(render_speedscope(result, title, f"common_api@{__version__}"))
    elif fmt == "svg":
        from common_api.services.flamegraph import render_svg

        missing = "; ".join(f"{pid}: {why}" for pid, why in result.missing_workers.items())
        response = Response(render_svg(result, title + (f" (missing: {missing})" if missing
                                                        else "")),
                            content_type="image/svg+xml; charset=utf-8")
    else:
        response = _text(render_collapsed(result))
    response.headers["X-Profile-Samples"] = str(result.samples)
    response.headers["X-Profile-Rate-Hz"] = f"{result.rate:.3f}"
    response.headers["X-Profile-Duration-Seconds"] = f"{result.duration:.3f}"
    if recorded:
        response.headers["X-Profile-Source"] = "history"
        response.headers["X-Profile-Span-Seconds"] = f"{result.duration:.3f}"
        response.headers["X-Profile-Span-Start"] = _iso(result.started_at)
        response.headers["X-Profile-Span-End"] = _iso(result.started_at + result.duration)
    if result.missing_workers:
        response.headers["X-Profile-Missing-Workers"] = ", ".join(
            f"{pid} ({why})" for pid, why in result.missing_workers.items())
    return response


@view("profile")
def profile() -> Response:
    profiler = _state().profiler
    fmt = _profile_format()
    parsed = profiler.parse_profile(request.args)
    return _profile_response(profiler.profile(parsed), fmt, recorded=parsed.last is not None)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@view("memory")
def memory() -> Response:
    profiler = _state().profiler
    as_json = _wants_json()
    report = profiler.memory(profiler.parse_memory(request.args))
    return _json(report.to_dict()) if as_json else _text(report.render())


@view("ui")
def ui() -> Response:
    from common_api.ui import HTML, PAGE_HEADERS, render_page

    scripts = BY_NAME["run_script"] in _state().enabled
    page = render_page(current_app.name, __version__, scripts)
    return Response(page, content_type=HTML, headers=PAGE_HEADERS)


# after every view above: a route for each enabled endpoint, then the 404/405 handlers
bp.record(lambda setup_state: mount_endpoints(setup_state, VIEWS))
bp.record_once(finish_registration)
