"""A host's own gunicorn config that follows the recipe halfway: it prepares the state
directory and calls common_api's post_fork from its own, and stops there."""

from __future__ import annotations

from common_api import gunicorn as common_api_hooks

common_api_hooks.prepare_state()
workers = 3
worker_class = "gthread"
threads = 2
control_socket_disable = True


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    worker.log.info("host's own post_fork")
    common_api_hooks.post_fork(server, worker)
