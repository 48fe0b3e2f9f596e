"""An app that tells which function ``gunicorn.util.write_error`` is in its worker, for
``tests/test_gunicorn_worker.py``: common_api's worker must not replace gunicorn's
functions for the whole process (issue 19)."""

from __future__ import annotations

import gunicorn.util
from flask import Flask

from common_api import bp

app = Flask("write_error_probe")
app.register_blueprint(bp)


@app.get("/write-error-owner")
def write_error_owner() -> str:
    function = gunicorn.util.write_error
    return f"{function.__module__}.{function.__qualname__}"
