"""Gunicorn hooks that make the workers of one server answer as one component, for a
host's own gunicorn config file to call (``common_api.gunicorn_conf`` is the ready preset
built on them).

A host config that keeps its own settings and hooks::

    # gunicorn.conf.py
    from common_api import gunicorn as common_api_hooks

    common_api_hooks.prepare_state()          # before gunicorn loads the app

    def post_worker_init(worker):
        common_api_hooks.post_worker_init(worker)

    def child_exit(server, worker):
        common_api_hooks.child_exit(server, worker)

    def on_exit(server):
        common_api_hooks.on_exit(server)

Importing this module does nothing: no directory is created or cleared until
``prepare_state()`` is called. It imports only the standard library (and common_api's
stdlib-only modules) at load time, so prometheus_client is first imported after
``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from common_api.compat.gunicorn import before_app_load
from common_api.config import STATE_DIR
from common_api.workers.state_dir import PROMETHEUS_ENV, StateDir

BIND = "COMMON_API_BIND"
WORKERS = "COMMON_API_WORKERS"
THREADS = "COMMON_API_THREADS"
DEFAULT_BIND = "127.0.0.1:7000"
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4

log = logging.getLogger("common_api.gunicorn")


@dataclass(frozen=True)
class _Prepared:
    state: StateDir
    owned: bool  # a fresh directory this process made, removed when it exits
    pid: int


_prepared: _Prepared | None = None
_wanted = False
_lock = threading.Lock()


def want_state() -> None:
    """Ask for ``prepare_state()`` at the first moment gunicorn's master is about to load
    the app: ``common_api.gunicorn_worker``'s ``setup()`` (which gunicorn calls before it
    preloads the app), else ``on_starting``. The preset calls this instead of preparing at
    import time."""
    global _wanted
    _wanted = True
    before_app_load(prepare_if_wanted)


def prepare_if_wanted() -> None:
    if _wanted:
        prepare_state()


def prepare_state(environ: MutableMapping[str, str] | None = None) -> StateDir:
    """Set up the server's shared state directory, once per master process; call it before
    gunicorn loads the app (at the top of a config file, or from ``on_starting`` when the
    app is not preloaded).

    ``COMMON_API_STATE_DIR`` is used when set (its contents from an earlier run are
    cleared: a server starts as a fresh component); otherwise a fresh temporary directory
    is made and removed when this process exits. ``PROMETHEUS_MULTIPROC_DIR`` is pointed
    inside it. Calling it again in the same process returns the same directory."""
    global _prepared
    environ = os.environ if environ is None else environ
    with _lock:
        if _prepared is not None and _prepared.pid == os.getpid():
            return _prepared.state
        given = environ.get(STATE_DIR)
        root = given or tempfile.mkdtemp(prefix="common-api-state-")
        state = StateDir(root)
        if given:
            # dumps/, level-sync/, windows/: what versions before the peer channel left
            for stale in (state.prometheus, state.workers, *(state.root / old for old in
                                                             ("dumps", "level-sync", "windows"))):
                shutil.rmtree(stale, ignore_errors=True)
            for stale_file in (state.metrics_baseline, state.loglevels):
                stale_file.unlink(missing_ok=True)
            for stale_file in state.root.glob("metrics-baseline-app*.json"):
                stale_file.unlink(missing_ok=True)
        state.create()
        environ[STATE_DIR] = str(state.root)
        environ[PROMETHEUS_ENV] = str(state.prometheus)
        _prepared = _Prepared(state, owned=not given, pid=os.getpid())
        if not given:
            atexit.register(_remove_owned)
    # PROMETHEUS_MULTIPROC_DIR is set by now, so prometheus_client may be imported
    _worker_exited()
    return state


def _remove_owned() -> None:
    prepared = _prepared
    if prepared is not None and prepared.owned and prepared.pid == os.getpid():
        shutil.rmtree(prepared.state.root, ignore_errors=True)


def _state() -> StateDir | None:
    if _prepared is not None:
        return _prepared.state
    root = os.environ.get(STATE_DIR)
    return StateDir(root) if root else None


def on_starting(server: Any) -> None:
    """Master, before the workers start: prepares the state directory if it is wanted and
    nothing did yet (too late for an app loaded with ``--preload``: call
    ``prepare_state()`` at config load time for that)."""
    prepare_if_wanted()


def post_fork(server: Any, worker: Any) -> None:
    """Each worker, right after the fork, before it loads the app: metric files that a
    full or read-only state directory cannot fail."""
    from common_api.workers.runtime import prepare_worker

    prepare_worker()


def post_worker_init(worker: Any) -> None:
    """Each worker, after the app is loaded: start its side of the shared state, and send
    the audit log to gunicorn's error log unless the host routes it itself."""
    from common_api.workers.runtime import WorkerRuntime

    WorkerRuntime.start_all()
    error_log = getattr(getattr(worker, "log", None), "error_log", None)
    if isinstance(error_log, logging.Logger):
        route_audit_log(error_log)


def route_audit_log(error_log: logging.Logger) -> bool:
    """Send ``common_api.audit`` (INFO) to ``error_log``'s handlers when the host has not
    configured it and nothing would show its lines. Returns whether it did."""
    from common_api.services.audit import AUDIT_LOGGER

    audit = logging.getLogger(AUDIT_LOGGER)
    if audit.handlers or (audit.hasHandlers() and audit.isEnabledFor(logging.INFO)):
        return False
    if not error_log.handlers:
        return False
    for handler in error_log.handlers:
        audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    return True


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker has exited: keep its metric counts, forget its statuses."""
    state = _state()
    if state is None:
        return
    _worker_exited()(state, worker.pid)


_exited: Any = None


def _worker_exited() -> Any:
    """What ``child_exit`` runs (it never raises), imported once. ``prepare_state()``
    imports it in the master ahead of time: gunicorn calls ``child_exit`` from its SIGCHLD
    handler, which can interrupt itself, and a module half-imported by the interrupted
    call would fail the nested one."""
    global _exited
    if _exited is None:
        from common_api.workers.runtime import worker_exited

        _exited = worker_exited
    return _exited


def on_exit(server: Any) -> None:
    """Master, at exit: remove the state directory if ``prepare_state()`` made it."""
    _remove_owned()


@dataclass(frozen=True)
class ServerSettings:
    """The preset's bind, workers and threads, from ``COMMON_API_BIND``,
    ``COMMON_API_WORKERS`` and ``COMMON_API_THREADS`` (command-line options win)."""

    bind: str = DEFAULT_BIND
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS


def _count(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{key} must be a positive integer, got {raw!r}")
    return int(text)


def _bind(environ: Mapping[str, str]) -> str:
    raw = environ.get(BIND)
    if raw is None or not raw.strip():
        return DEFAULT_BIND
    text = raw.strip()
    if text.startswith(("unix:", "fd://")):
        return text
    host, colon, port = text.rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()) or \
            not 0 <= int(port) <= 65535:
        raise ValueError(f"{BIND} must be HOST:PORT (or unix:PATH), got {raw!r}")
    return text


def server_settings(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Validated server settings; ValueError names the key of a bad value."""
    environ = os.environ if environ is None else environ
    return ServerSettings(_bind(environ), _count(environ, WORKERS, DEFAULT_WORKERS),
                          _count(environ, THREADS, DEFAULT_THREADS))
