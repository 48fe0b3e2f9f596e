"""Gunicorn configuration for a component that serves common_api.

Use it with plain gunicorn as ``gunicorn -c python:common_api.gunicorn_conf MODULE:APP``;
``common-api serve`` uses it too. Command-line options override these defaults.
"""

from __future__ import annotations

import os

bind = os.environ.get("COMMON_API_BIND", "127.0.0.1:7000")
workers = int(os.environ.get("COMMON_API_WORKERS", "1"))
threads = int(os.environ.get("COMMON_API_THREADS", "4"))
worker_class = "gthread"
timeout = 60
graceful_timeout = 10
# gunicorn 23+ opens a control socket at one fixed path per user; several servers on one
# machine (tests, side-by-side components) would fight over it.
control_socket_disable = True
