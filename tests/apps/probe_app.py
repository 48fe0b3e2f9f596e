"""The demo component plus a probe, for ``tests/test_serve_security.py``.

Served by real gunicorn as ``probe_app:app``: the demo (its loggers, metrics, periodic
threads and the seed's ``app.state.lmcache_adapter``) with ``app.state.probe``, a host
object whose ``hit()`` appends this worker's pid to the file named by ``PROBE_FILE``. A
script that calls it leaves a line there, so a test sees whether any worker ran a script.
Serve it with ``COMMON_API_SCRIPT_HOST_PACKAGES=probe_app`` so that scripts may call it.
"""

from __future__ import annotations

import os

from common_api.demo import app

__all__ = ["app"]


class Probe:
    def hit(self) -> None:
        with open(os.environ["PROBE_FILE"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")


app.state.probe = Probe()  # type: ignore[attr-defined]
