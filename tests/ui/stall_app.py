"""A component whose critical thread can be stalled on demand, for the page's browser tests.

Served as ``stall_app:app`` (the tests put this directory on the server's PYTHONPATH),
under the prefix ``/ops``. While the file named by ``STALL_FILE`` exists, the critical
thread ``pacemaker`` hangs inside its run, so after three intervals the health endpoint
names it, and the page shows where it is stuck: in ``wait_on_downstream()``, called from
``sync_with_controller()``; the low thread ``bookkeeper`` keeps running.
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from common_api import ThreadLevel, bp, create_periodic_thread

STALL_FILE = os.environ["STALL_FILE"]
# what a host's logging.config.dictConfig does to every logger that exists when it runs
# (disable_existing_loggers defaults to True), here to one logger only
logging.getLogger("stall_app.cache").disabled = True
_released = threading.Event()


def wait_on_downstream() -> None:
    while os.path.exists(STALL_FILE) and not _released.wait(0.05):
        pass


def sync_with_controller() -> None:
    wait_on_downstream()


def pacemaker() -> bool:
    sync_with_controller()
    return True


def bookkeeper() -> bool:
    return True


create_periodic_thread("pacemaker", 0.5, pacemaker, level=ThreadLevel.CRITICAL).start()
create_periodic_thread("bookkeeper", 1.0, bookkeeper, level=ThreadLevel.LOW).start()

app = Flask("stall_app")
app.register_blueprint(bp, url_prefix="/ops")
