"""Gunicorn configuration for a component that serves common_api: the ready preset.

Use it with plain gunicorn as ``gunicorn -c python:common_api.gunicorn_conf MODULE:APP``;
``common-api serve`` uses it too. Command-line options override these defaults. A host
with a config file of its own calls the same hooks from it (``common_api.gunicorn``).

It makes the workers of one server answer as one component (docs/multiworker.md): before
gunicorn loads the app, the master prepares the shared state directory
(``COMMON_API_STATE_DIR``, a fresh temporary one removed at exit unless the variable is
set) and points ``PROMETHEUS_MULTIPROC_DIR`` inside it; the hooks start each worker's
side and fold an exited worker's metric files. Importing this module creates and clears
nothing: the preparation happens when gunicorn sets up its master.

``COMMON_API_BIND``, ``COMMON_API_WORKERS`` and ``COMMON_API_THREADS`` give the defaults
of ``--bind``, ``--workers`` and ``--threads``; a bad value stops gunicorn with one line.
"""

from __future__ import annotations

# names only: gunicorn reads every module-level name here, and 'config' is one of its settings
from common_api import gunicorn as _hooks
from common_api.compat import gunicorn as _compat

try:
    _server = _hooks.server_settings()
except ValueError as _error:
    raise SystemExit(f"common_api: {_error}") from None

_hooks.want_state()

bind = _server.bind
workers = _server.workers
threads = _server.threads
# the slow-client worker on gunicorn 27+, gunicorn's own gthread handling before (said once)
worker_class = _compat.preset_worker_class()
timeout = 60
# gunicorn's largest request line: longer query values then reach the app, whose 400 names
# the parameter (COMMON_API_MAX_QUERY_LENGTH), instead of a bare 414 from the server
limit_request_line = 8190
graceful_timeout = 10
# gunicorn 23+ opens a control socket at one fixed path per user; several servers on one
# machine (tests, side-by-side components) would fight over it.
control_socket_disable = True

on_starting = _hooks.on_starting
post_fork = _hooks.post_fork
post_worker_init = _hooks.post_worker_init
child_exit = _hooks.child_exit
on_exit = _hooks.on_exit
