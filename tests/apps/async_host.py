"""A host shaped like LMCache's storage manager, for ``tests/workers/test_tasks_served.py``,
the page's browser test and ``benchmarks/bench_tasks.py``: each worker that imports it runs
the issue's storage loop (``tests/asyncio_hosts.py``) in a thread ``storage-loop``, started
at import (after the fork, without ``--preload``), with ``ASYNC_HOST_EXTRA_TASKS`` more
fetches pending (``extra-fetch-<i>``, default 0). ``/pid`` is a trivial host route."""

from __future__ import annotations

import asyncio
import os

from asyncio_hosts import LoopThread, fetch_from_remote, storage_main
from flask import Flask

from common_api import bp

EXTRA_TASKS = int(os.environ.get("ASYNC_HOST_EXTRA_TASKS", "0"))

app = Flask("async_host")
app.register_blueprint(bp)


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


async def main(host: LoopThread) -> None:
    extra = [asyncio.create_task(fetch_from_remote(i), name=f"extra-fetch-{i}")
             for i in range(EXTRA_TASKS)]
    try:
        await storage_main(host)
    finally:
        for task in extra:
            task.cancel()


storage = LoopThread("storage-loop", main).start()
