"""The bundled demo component: what ``common-api serve`` runs without ``--app``.

A small service with the blueprint registered, periodic threads of every level doing
real work (a heartbeat, a stats collector, a cache sweeper, a usage reporter), a few
loggers (among them the seed's ``lmcache.v1.cache_engine`` at WARNING and
``lmcache.v1.storage_backend`` at INFO), host metrics and the objects of the seed's example
script under ``app.state``, so every example of the seed answers as the seed shows it.
The threads use both forms of the periodic-thread API: functions, and LMCache's subclass
form (the cache sweeper).
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from flask import Flask, jsonify
from prometheus_client import Counter, Gauge

from common_api import (
    PeriodicThread,
    PeriodicThreadRegistry,
    ThreadLevel,
    ThreadRunSummary,
    bp,
    create_periodic_thread,
)
from common_api.config import SCRIPT_ENABLED

log = logging.getLogger("demo.component")
heartbeat_log = logging.getLogger("demo.heartbeat")
stats_log = logging.getLogger("demo.stats")
cache_log = logging.getLogger("demo.cache")
# The seed's loggers, at the seed's levels: the cache engine's per-item chatter is DEBUG
# (hidden until an operator asks), the storage backend reports evictions at INFO.
engine_log = logging.getLogger("lmcache.v1.cache_engine")
engine_log.setLevel(logging.WARNING)
storage_log = logging.getLogger("lmcache.v1.storage_backend")
storage_log.setLevel(logging.INFO)
WORK_DONE = Counter("demo_work_items", "Work items handled by the demo component")
CACHE_SIZE = Gauge("demo_cache_entries", "Entries in the demo cache", multiprocess_mode="livesum")
CACHE_EVICTIONS = Counter("demo_cache_evictions", "Entries the cache sweeper evicted")


@dataclass
class Metadata:
    """Shape of the seed's ``lmcache_engine.metadata`` example."""

    kv_shape: tuple[int, ...] = (27, 1, 64, 1, 576)
    rank: int = 0

    def is_first_rank(self) -> bool:
        return self.rank == 0


@dataclass
class Engine:
    metadata: Metadata = field(default_factory=Metadata)


@dataclass
class Adapter:
    lmcache_engine: Engine = field(default_factory=Engine)


class ExpiringCache:
    """A tiny TTL cache: the demo's hot path fills it, the sweeper empties it."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, value)
            CACHE_SIZE.set(len(self._entries))
        engine_log.debug("stored %s", key)

    def __len__(self) -> int:
        return len(self._entries)

    def sweep(self) -> int:
        now = time.monotonic()
        with self._lock:
            expired = [key for key, (deadline, _) in self._entries.items() if deadline <= now]
            for key in expired:
                del self._entries[key]
            CACHE_SIZE.set(len(self._entries))
        CACHE_EVICTIONS.inc(len(expired))
        cache_log.debug("swept %d of %d entries", len(expired), len(expired) + len(self))
        return len(expired)


class CacheSweeper(PeriodicThread):
    """Evicts expired cache entries: a periodic thread in LMCache's subclass form."""

    def __init__(self, cache: ExpiringCache, interval: float) -> None:
        super().__init__(name="cache-sweeper", interval=interval, level=ThreadLevel.MEDIUM)
        self._cache = cache

    def _execute(self) -> ThreadRunSummary:
        evicted = self._cache.sweep()
        storage_log.info("evicted %d expired entries", evicted)
        return ThreadRunSummary(success=True, message=f"evicted {evicted}",
                                extra_info={"evicted": evicted, "entries": len(self._cache)})


def create_app() -> Flask:
    app = Flask("common_api.demo")
    # the demo answers every example of the seed, the script one too: /run_script is on
    # unless the environment turns it off (COMMON_API_SCRIPT_ENABLED=false)
    app.config[SCRIPT_ENABLED] = os.environ.get(SCRIPT_ENABLED, "true")
    app.register_blueprint(bp)
    state: SimpleNamespace = app.state  # type: ignore[attr-defined]
    state.lmcache_adapter = Adapter()
    state.cache = ExpiringCache(ttl=30.0)
    state.heartbeats = 0
    state.stats = {}
    state.started_at = time.time()

    @app.get("/")
    def index() -> Any:
        return jsonify(component="common-api demo", pid=os.getpid(),
                       endpoints=["/env", "/loglevel", "/metrics", "/threads",
                                  "/periodic-threads", "/periodic-threads-health"])

    @app.get("/work")
    def work() -> Any:
        WORK_DONE.inc()
        state.cache.put(f"item-{time.monotonic_ns()}", os.getpid())
        log.info("handled a work item")
        return jsonify(ok=True, pid=os.getpid())

    def heartbeat() -> ThreadRunSummary:
        state.heartbeats += 1
        heartbeat_log.debug("heartbeat %d", state.heartbeats)
        return ThreadRunSummary(success=True, message=f"beat {state.heartbeats}")

    def collect_stats() -> ThreadRunSummary:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        state.stats = {"threads": threading.active_count(), "max_rss_kb": usage.ru_maxrss,
                       "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                       "cache_entries": len(state.cache)}
        stats_log.debug("stats %s", state.stats)
        return ThreadRunSummary(success=True, message="collected", extra_info=dict(state.stats))

    def report_usage() -> bool:
        log.info("uptime %.0f s, %d heartbeats", time.time() - state.started_at, state.heartbeats)
        return True

    for name, interval, fn, level in (
        ("heartbeat", 2.0, heartbeat, ThreadLevel.CRITICAL),
        ("stats-collector", 5.0, collect_stats, ThreadLevel.HIGH),
        ("usage-reporter", 30.0, report_usage, ThreadLevel.LOW),
    ):
        create_periodic_thread(name, interval, fn, level=level).start()
    sweeper = CacheSweeper(state.cache, interval=10.0)
    PeriodicThreadRegistry.get_instance().register(sweeper)
    sweeper.start()
    return app


logging.basicConfig(level=logging.INFO,
                    format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
app = create_app()
