"""Real event loops in threads, shaped like the hosts /tasks is for (LMCache's storage
loop), for the tests of /tasks: each started loop is stopped and joined by ``close``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class LoopThread:
    """A thread running ``main`` on a loop of its own; ``ready`` once ``main`` says so."""

    def __init__(self, name: str, main: Callable[[LoopThread], Coroutine[Any, Any, None]],
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
                 ) -> None:
        self.ready = threading.Event()
        self.loop = loop_factory()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self._main = main
        self._stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._body())
        finally:
            self.loop.close()

    async def _body(self) -> None:
        self._stopping = asyncio.Event()
        worker = asyncio.create_task(self._main(self), name="main")
        await self._stopping.wait()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        await asyncio.gather(*rest, return_exceptions=True)

    def start(self, timeout: float = 10.0) -> LoopThread:
        self.thread.start()
        if not self.ready.wait(timeout):
            self.close()
            raise AssertionError(f"loop thread {self.thread.name} did not get ready")
        return self

    def close(self) -> None:
        stopping = self._stopping
        if stopping is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self.loop.call_soon_threadsafe(stopping.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), f"loop thread {self.thread.name} did not stop"


async def remote_get(key: int) -> None:
    await asyncio.sleep(3600)


async def fetch_from_remote(key: int) -> None:
    await remote_get(key)


async def storage_main(host: LoopThread) -> None:
    """The issue's storage loop: ``fetch-chunk-42`` stuck in a remote fetch, ``ack-waiter``
    on a future never set, three idle consumers on a queue, ``watcher`` awaiting the
    fetch task."""
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def ack() -> None:
        await never

    async def consume() -> None:
        while True:
            await queue.get()

    fetch = asyncio.create_task(fetch_from_remote(42), name="fetch-chunk-42")

    async def watch() -> None:
        await fetch

    started = [fetch, asyncio.create_task(ack(), name="ack-waiter"),
               asyncio.create_task(watch(), name="watcher")]
    started += [asyncio.create_task(consume(), name=f"consumer-{i}") for i in range(3)]
    await asyncio.sleep(0)
    host.ready.set()
    await asyncio.gather(*started)
