"""Flask's private layout that common_api relies on, checked at import.

The blueprint answers 404 and 405 under its own paths in its own forms and hands every
other path to the host's handler. Flask offers no public way to ask which handler an app
registered for a code or a class, so the host's are read from ``app.error_handler_spec``
(``[None][code][class]`` for a code, ``[None][None][class]`` for a class). Checked on a
throwaway app: a handler registered each way is found there.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException, NotFound

from common_api.compat import require

LIBRARY = "flask"
HOST_HANDLERS_FEATURE = ("handing paths outside the blueprint to the host's own 404/405 "
                         "handlers")


def code_handler(app: Flask, code: int) -> Any:
    """The app-wide handler ``app`` registered for ``code``, if any."""
    return next(iter(app.error_handler_spec.get(None, {}).get(code, {}).values()), None)


def class_handler(app: Flask, error: HTTPException) -> Any:
    """The app-wide handler for the error's class (``@app.errorhandler(HTTPException)``)."""
    by_class = app.error_handler_spec.get(None, {}).get(None, {})
    for cls in type(error).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def _layout_holds() -> bool:
    app = Flask("common_api_shape_check")

    def for_code(error: Exception) -> str:
        return "code"

    def for_class(error: Exception) -> str:
        return "class"

    app.register_error_handler(404, for_code)
    app.register_error_handler(HTTPException, for_class)
    return code_handler(app, 404) is for_code and class_handler(app, NotFound()) is for_class


HOST_HANDLERS = require(HOST_HANDLERS_FEATURE, LIBRARY, {
    "app.error_handler_spec[None][code or None][class]": _layout_holds,
})
