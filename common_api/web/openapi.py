"""The OpenAPI document of one app: the packaged description of every endpoint, cut to
the endpoints and methods the app serves and to the limits its settings set."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from common_api import __version__, config
from common_api.endpoints import Endpoint

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def packaged_openapi() -> dict[str, Any]:
    """The document shipped with the package, every endpoint described."""
    text = resources.files("common_api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def build_openapi(enabled: Iterable[Endpoint], settings: config.Settings) -> dict[str, Any]:
    """The document of an app serving ``enabled`` under ``settings`` (a new dict each call)."""
    document = copy.deepcopy(packaged_openapi())
    document["info"]["version"] = __version__
    described = {}
    for endpoint in enabled:
        operations = document["paths"][endpoint.openapi_path]
        described[endpoint.openapi_path] = {
            key: value for key, value in operations.items()
            if key.upper() in endpoint.methods or key not in _HTTP_METHODS}
    document["paths"] = described
    _state_window_limit(document, settings.profile_max_seconds)
    _state_history_limit(document, settings.profile_history_seconds)
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
