"""Exceptions the services raise; the blueprint maps them to 4xx answers, or 503 when the
endpoint cannot do its job right now."""

from __future__ import annotations

from gunicorn.errors import AppImportError


class ApiError(Exception):
    """A request the component cannot answer as asked; ``str(error)`` is the message."""

    status = 400


class InvalidInput(ApiError):
    """A parameter has a value that is not allowed (400)."""

    status = 400


class NotFound(ApiError):
    """The thing named by the request does not exist (404)."""

    status = 404


class Forbidden(ApiError):
    """The client may not do this (403)."""

    status = 403


class Unauthorized(ApiError):
    """The request carries no credentials where they are required (401)."""

    status = 401


class PayloadTooLarge(ApiError):
    """The request body is over the configured limit (413)."""

    status = 413


class Busy(ApiError):
    """Another request is already doing this and only one may at a time (429)."""

    status = 429


class Unavailable(ApiError):
    """The endpoint cannot do its job right now (503); the message says why."""

    status = 503



class ConfigurationError(RuntimeError, AppImportError):  # type: ignore[misc]
    """A bad COMMON_API_* setting, found when the blueprint is registered; the message
    names the key. It is gunicorn's AppImportError too, so gunicorn stops with that one line
    instead of a traceback from every worker."""


def describe_error(error: BaseException) -> str:
    """One line for an OS or parse error: what failed and why, without a traceback."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {error}"[:300]
