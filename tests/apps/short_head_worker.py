"""The config's worker with a 2 s header deadline, so a test can watch it expire
(``GUNICORN_CMD_ARGS=--worker-class short_head_worker.Worker``)."""

from __future__ import annotations

from common_api.gunicorn_worker import PlainErrorThreadWorker


class Worker(PlainErrorThreadWorker):
    header_timeout = 2.0
