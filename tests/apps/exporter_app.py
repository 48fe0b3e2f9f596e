"""A host that uses prometheus-flask-exporter the usual way, ``PrometheusMetrics(app)``,
registered before or after the blueprint (``EXPORTER_ORDER=before|after``), for
``tests/test_host_setup.py`` under real gunicorn."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from prometheus_flask_exporter import PrometheusMetrics

from common_api import bp

app = Flask("exporter_app")
if os.environ.get("EXPORTER_ORDER", "before") == "before":
    metrics = PrometheusMetrics(app)
    app.register_blueprint(bp)
else:
    app.register_blueprint(bp)
    metrics = PrometheusMetrics(app)


@app.get("/hit")
def hit() -> Any:
    return jsonify(pid=os.getpid())
