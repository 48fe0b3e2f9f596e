"""A host shaped like LMCache's storage manager, for ``tests/workers/test_tasks_served.py``:
each worker that imports it runs the issue's storage loop (``tests/asyncio_hosts.py``) in a
thread ``storage-loop``, started at import (after the fork, without ``--preload``)."""

from __future__ import annotations

from asyncio_hosts import LoopThread, storage_main
from flask import Flask

from common_api import bp

app = Flask("async_host")
app.register_blueprint(bp)
storage = LoopThread("storage-loop", storage_main).start()
