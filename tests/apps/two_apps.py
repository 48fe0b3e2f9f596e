"""Two Flask apps in one process behind werkzeug's DispatcherMiddleware, each with the
blueprint (``/a/...`` and ``/b/...``), for ``tests/test_host_setup.py``."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from common_api import bp


def make(name: str) -> Flask:
    app = Flask(name)
    app.register_blueprint(bp)

    @app.get("/hit")
    def hit() -> Any:
        return jsonify(app=name, pid=os.getpid())

    return app


first, second = make("first"), make("second")
app = DispatcherMiddleware(Flask("root"), {"/a": first, "/b": second})
