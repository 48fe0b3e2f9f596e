"""A component that is unhealthy from the start, for the client tests.

Served as ``unhealthy_app:app`` (the tests put this directory on the server's PYTHONPATH).
Its critical periodic thread ``doomed`` raises ``IrrecoverableException`` on its first run,
so it stops in every worker and ``/periodic-threads-health`` answers 503 naming it once per
worker; the high thread ``steady`` keeps running and stays out of the answer.
"""

from __future__ import annotations

from flask import Flask

from common_api import IrrecoverableException, ThreadLevel, bp, create_periodic_thread


def doomed() -> None:
    raise IrrecoverableException("the device this thread watches is gone")


def steady() -> bool:
    return True


create_periodic_thread("doomed", 0.5, doomed, level=ThreadLevel.CRITICAL).start()
create_periodic_thread("steady", 0.5, steady, level=ThreadLevel.HIGH).start()

app = Flask("unhealthy_app")
app.register_blueprint(bp)
