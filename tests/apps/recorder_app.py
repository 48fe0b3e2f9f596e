"""A host for the flight-recorder tests (``tests/workers/test_flight_recorder.py``).

Served by real gunicorn as ``recorder_app:app`` (the test puts this directory on the
server's PYTHONPATH); each worker imports it and so runs its own ``rec-sync``:

- ``rec-sync`` (high, every 0.3 s) calls ``sync_with_controller()``, which calls
  ``wait_on_downstream()``; while the file named by ``STALL_FILE`` exists that call does
  not return, so after three intervals the thread is stalled there in every worker;
- ``/crunch?seconds=S`` burns CPU for S seconds in ``crunch_numbers()`` and answers the
  worker's pid.
"""

from __future__ import annotations

import os
import threading
import time

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from common_api import ThreadLevel, bp, create_periodic_thread

STALL_FILE = os.environ["STALL_FILE"]
MAX_CRUNCH_SECONDS = 10.0
_never = threading.Event()


def wait_on_downstream() -> None:
    while os.path.exists(STALL_FILE):
        _never.wait(0.05)


def sync_with_controller() -> bool:
    wait_on_downstream()
    return True


def crunch_numbers(seconds: float) -> int:
    total = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for value in range(2000):
            total += value * value % 7
    return total


create_periodic_thread("rec-sync", 0.3, sync_with_controller, level=ThreadLevel.HIGH).start()

app = Flask("recorder_app")
app.register_blueprint(bp)


@app.get("/crunch")
def crunch() -> ResponseReturnValue:
    seconds = min(float(request.args.get("seconds", "2")), MAX_CRUNCH_SECONDS)
    crunch_numbers(seconds)
    return jsonify(pid=os.getpid())
