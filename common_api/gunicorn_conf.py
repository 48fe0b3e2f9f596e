"""Gunicorn configuration for a component that serves common_api.

Use it with plain gunicorn as ``gunicorn -c python:common_api.gunicorn_conf MODULE:APP``;
``common-api serve`` uses it too. Command-line options override these defaults.

It makes the workers of one server answer as one component (docs/multiworker.md):
when gunicorn loads this file (in the master, before the app is imported) it sets up the
shared state directory, ``COMMON_API_STATE_DIR`` (a fresh temporary one, removed at exit,
unless the variable is already set) and points ``PROMETHEUS_MULTIPROC_DIR`` inside it.
Its hooks start each worker's side and fold an exited worker's metric files.

This module imports only the standard library at load time, on purpose.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

# names only: gunicorn reads every module-level name here, and 'config' is one of its settings
from common_api.config import STATE_DIR
from common_api.workers.level_sync import DIRECTORY as LEVEL_SYNC
from common_api.workers.state_dir import PROMETHEUS_ENV, StateDir

bind = os.environ.get("COMMON_API_BIND", "127.0.0.1:7000")
workers = int(os.environ.get("COMMON_API_WORKERS", "2"))
threads = int(os.environ.get("COMMON_API_THREADS", "4"))
worker_class = "common_api.gunicorn_worker.PlainErrorThreadWorker"
timeout = 60
# gunicorn's largest request line: longer query values then reach the app, whose 400 names
# the parameter (COMMON_API_MAX_QUERY_LENGTH), instead of a bare 414 from the server
limit_request_line = 8190
graceful_timeout = 10
# gunicorn 23+ opens a control socket at one fixed path per user; several servers on one
# machine (tests, side-by-side components) would fight over it.
control_socket_disable = True

log = logging.getLogger("common_api.gunicorn")


def _prepare_state_dir() -> tuple[StateDir, bool]:
    given = os.environ.get(STATE_DIR)
    owned = not given
    root = given or tempfile.mkdtemp(prefix="common-api-state-")
    state = StateDir(root)
    # a server starts as a fresh component: no counts, levels or workers of an earlier run
    for stale in (state.prometheus, state.workers, state.dumps, state.root / LEVEL_SYNC):
        shutil.rmtree(stale, ignore_errors=True)
    for stale_file in (state.metrics_baseline, state.loglevels):
        stale_file.unlink(missing_ok=True)
    state.create()
    os.environ[STATE_DIR] = str(state.root)
    os.environ[PROMETHEUS_ENV] = str(state.prometheus)
    return state, owned


STATE, _OWNS_STATE_DIR = _prepare_state_dir()
_MASTER_PID = os.getpid()


def post_fork(server: Any, worker: Any) -> None:
    from common_api.workers.runtime import prepare_worker

    prepare_worker()


def post_worker_init(worker: Any) -> None:
    from common_api.workers.runtime import WorkerRuntime

    WorkerRuntime.start_all()


def child_exit(server: Any, worker: Any) -> None:
    from common_api.workers.runtime import worker_exited

    worker_exited(STATE, worker.pid)


def on_exit(server: Any) -> None:
    if _OWNS_STATE_DIR and os.getpid() == _MASTER_PID:
        shutil.rmtree(STATE.root, ignore_errors=True)
