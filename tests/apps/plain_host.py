"""A minimal host app, served by plain gunicorn in ``tests/test_host_setup.py``."""

from __future__ import annotations

from flask import Flask

from common_api import bp

app = Flask("plain_host")
app.register_blueprint(bp)
