"""A host app for the multi-worker tests (``tests/workers/test_multiworker.py``).

Served by real gunicorn as ``multi_app:app`` (the test puts this directory on the server's
PYTHONPATH). Each worker imports it, so each worker has its own copies of what is below:

- ``host_hits`` (counter), ``host_latency`` (histogram) and ``host_sizes`` (summary): host
  metric objects that ``/hit`` and ``/sleep`` change, to check sums and resets across workers;
- periodic threads started at import: ``heartbeat`` (critical, every 0.4 s), ``watchdog``
  (high, every 0.5 s) and ``level-probe`` (low, every 0.1 s). Each probe run logs to
  ``multi.app`` at DEBUG and reports the logger's effective level and how many DEBUG records
  reached its handler, so a worker's background behaviour is visible through
  ``/periodic-threads`` without a request to it;
- ``/pid`` answers the level ``multi.app`` has in this worker's host code (it applies
  nothing), ``/level-history`` when each level was set here (wall clock);
- ``/stall`` makes this worker's next heartbeat run block (the thread turns stale);
- ``/grow?n=N`` creates N new series of ``host_series`` (each worker numbers its own), so
  the worker's metric files must grow (the fault tests fill the state directory first);
- ``/block`` holds the GIL in a C call, so every thread of the worker is stuck and it
  accepts no connection: only a signal handler (faulthandler) can still answer for it;
- ``/spawn?n=N`` starts N idle threads (``idle-<i>``) in this worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from gil_hold import hold_gil
from prometheus_client import Counter, Histogram, Summary

from common_api import ThreadLevel, ThreadRunSummary, bp, create_periodic_thread

LOGGER_NAME = "multi.app"
MAX_BLOCK_SECONDS = 60.0

host_hits = Counter("host_hits", "Hits on /hit (and /sleep) in any worker")
host_latency = Histogram("host_latency_seconds", "A host histogram that /hit observes")
host_sizes = Summary("host_sizes_bytes", "A host summary that /hit observes")
host_series = Counter("host_series", "Series that /grow creates", ["n"])
_grown = [0]

app_log = logging.getLogger(LOGGER_NAME)
app_log.propagate = False


class CountingHandler(logging.Handler):
    """Counts the DEBUG records that get through the logger and this handler's levels, and
    records when its level was set (setting a logger's level sets its handlers' too)."""

    def __init__(self) -> None:
        self.level_changes: list[tuple[float, str]] = []
        super().__init__()
        self.debug_records = 0

    def setLevel(self, level: int | str) -> None:
        super().setLevel(level)
        self.level_changes.append((time.time(), logging.getLevelName(self.level)))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.DEBUG:
            self.debug_records += 1


records = CountingHandler()
app_log.addHandler(records)

_stall = threading.Event()
_release = threading.Event()


def heartbeat() -> bool:
    if _stall.is_set():
        _release.wait(120)
    return True


def watchdog() -> bool:
    return True


def level_probe() -> ThreadRunSummary:
    app_log.debug("level probe in %d", os.getpid())
    level = logging.getLevelName(app_log.getEffectiveLevel())
    return ThreadRunSummary(True, f"{LOGGER_NAME}={level}",
                            {"level": level, "debug_records": records.debug_records})


create_periodic_thread("heartbeat", 0.4, heartbeat, level=ThreadLevel.CRITICAL).start()
create_periodic_thread("watchdog", 0.5, watchdog, level=ThreadLevel.HIGH).start()
create_periodic_thread("level-probe", 0.1, level_probe, level=ThreadLevel.LOW).start()


def create_app() -> Flask:
    app = Flask("multi_app")
    app.register_blueprint(bp)

    @app.get("/hit")
    def hit() -> Any:
        host_hits.inc()
        host_latency.observe(0.01)
        host_sizes.observe(100)
        return jsonify(pid=os.getpid())

    @app.get("/grow")
    def grow() -> Any:
        for _ in range(int(request.args.get("n", "100"))):
            _grown[0] += 1
            host_series.labels(f"{os.getpid()}-{_grown[0]}").inc()
        return jsonify(pid=os.getpid(), series=_grown[0])

    @app.get("/pid")
    def pid() -> Any:
        level = logging.getLevelName(app_log.getEffectiveLevel())
        return jsonify(pid=os.getpid(), level=level)

    @app.get("/level-history")
    def level_history() -> Any:
        """When this worker set the level of ``multi.app``'s handler, and to what."""
        return jsonify(pid=os.getpid(), changes=records.level_changes[-100:])

    @app.get("/state-dir")
    def state_dir() -> Any:
        return jsonify(pid=os.getpid(), state_dir=os.environ.get("COMMON_API_STATE_DIR"),
                       prometheus=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

    @app.get("/stall")
    def stall() -> Any:
        _stall.set()
        return jsonify(pid=os.getpid())

    @app.get("/sleep")
    def sleep() -> Any:
        """Count one hit, then keep this request thread busy for ``s`` seconds."""
        host_hits.inc()
        started = Path(request.args["started"]) if "started" in request.args else None
        if started is not None:
            started.write_text(str(os.getpid()))
        time.sleep(min(float(request.args.get("s", "1")), MAX_BLOCK_SECONDS))
        return jsonify(pid=os.getpid())

    @app.get("/block")
    def block() -> Any:
        """Write this worker's pid to ``marker``, then stall every thread of the worker."""
        Path(request.args["marker"]).write_text(str(os.getpid()))
        hold_gil(min(float(request.args.get("s", "10")), MAX_BLOCK_SECONDS))
        return jsonify(pid=os.getpid())

    @app.get("/spawn")
    def spawn() -> Any:
        for index in range(int(request.args.get("n", "1"))):
            threading.Thread(target=_idle.wait, name=f"idle-{index}", daemon=True).start()
        return jsonify(pid=os.getpid(), threads=threading.active_count())

    return app


_idle = threading.Event()
app = create_app()
