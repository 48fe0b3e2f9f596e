"""The bodies of every answer: plain text, JSON, and the one shape of an error."""

from __future__ import annotations

import os
from typing import Any

from flask import Request, Response, jsonify
from werkzeug.wsgi import LimitedStream

from common_api import __version__

TEXT = "text/plain; charset=utf-8"


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


def stamp(response: Response) -> Response:
    """What every answer under the blueprint's paths carries, errors of unmatched paths
    included: never cached, and which process and version answered."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Worker-Pid"] = str(os.getpid())
    response.headers["X-Common-Api-Version"] = __version__
    return response
