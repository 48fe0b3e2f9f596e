"""A realistic host for the sandbox tests: what an LMCache-like component keeps under app.state.

Everything an attacker would look for is here, the way real hosts hold it:

- the app is a ``Flask`` subclass defined by the host (:class:`ComponentApp`);
- the engine keeps references to framework objects: the app, ``app.config`` (a
  ``flask.Config``, with the secret key), a logger, a lock;
- a dataclass and a ``dict`` subclass that hold the config, so their default reprs
  print it; a ``__getattr__`` that delegates to the app;
- container subclasses (``dict``, ``list``, ``set``) whose inherited builtin methods
  (``update``, ``extend``, ``sort``, ``add``...) would mutate the host or run long C
  loops in the worker;
- a third-party client (Redis-like: its class says it comes from ``redis.client``)
  holding a session token;
- ``app.state`` itself holds underscore attributes with secrets;
- an L1 manager with ``write_ttl_seconds``, the setting LMCache's documented
  reconfiguration script changes.

``create_app()`` is what gunicorn serves (``lmcache_host:create_app()``): the blueprint
plus a critical periodic thread every 0.2 s, so health turns 503 the moment the worker
is starved for more than a few tenths of a second.
"""

from __future__ import annotations

import logging
import os
import threading
import types
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.config import Config

CONFIG_CANARY = "cfg-canary-5e1d09"
TOKEN_CANARY = "tok-canary-a83c21"
ADMIN_CANARY = "adm-canary-4b9e11"
SESSION_CANARY = "ses-canary-c70d2a"
HOST_CANARIES = (ADMIN_CANARY, SESSION_CANARY)


class ComponentApp(Flask):
    """The host's own app class (hosts subclass Flask to add helpers)."""

    def describe(self) -> str:
        return f"component {self.name}"


class L1Manager:
    """The L1 cache manager: its public settings are what operators reconfigure."""

    def __init__(self) -> None:
        self.write_ttl_seconds = 60
        self.max_entries = 10_000
        self.eviction = "lru"
        self.tiers = ("cpu", "disk")
        self.on_evict = self._evicted  # a callable attribute: never replaceable
        self.backend = types.SimpleNamespace(kind="local")  # an object: never replaceable

    def _evicted(self, key: str) -> None:
        return None

    def usage(self) -> dict[str, int]:
        return {"entries": 12, "ttl": self.write_ttl_seconds}


class Registry(dict):  # type: ignore[type-arg]
    """A host dict subclass (models by name); its dict methods are not host API."""

    def models(self) -> list[str]:
        return sorted(self)


class History(list):  # type: ignore[type-arg]
    """A host list subclass (recent events)."""

    def latest(self) -> object:
        return self[-1] if self else None


class Tags(set):  # type: ignore[type-arg]
    """A host set subclass."""


class RedisLikeClient:
    """A third-party client object (its class is redis's): not host code."""

    def __init__(self) -> None:
        self._store = {"session:admin": SESSION_CANARY}

    def get(self, key: str) -> object:
        return self._store.get(key)

    def keys(self, pattern: str = "*") -> list[str]:
        return list(self._store)


RedisLikeClient.__module__ = "redis.client"


@dataclass
class CacheConfig:
    """A host dataclass that keeps the app's config: its generated repr prints it."""

    ttl: int
    app_config: Config
    _token: str = ADMIN_CANARY


class Delegating:
    """A host wrapper whose __getattr__ delegates to the app (a framework object)."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class Metadata:
    kv_shape = (27, 1, 64, 1, 576)

    def is_first_rank(self) -> bool:
        return True


@dataclass
class Engine:
    """The engine: live objects, references to framework objects, container subclasses."""

    app: Flask
    metadata: Metadata = field(default_factory=Metadata)
    l1: L1Manager = field(default_factory=L1Manager)
    registry: Registry = field(default_factory=lambda: Registry(llama=1, mistral=2))
    history: History = field(default_factory=lambda: History(["started"]))
    tags: Tags = field(default_factory=lambda: Tags({"gpu"}))
    client: RedisLikeClient = field(default_factory=RedisLikeClient)
    log_lines: list[str] = field(default_factory=lambda: ["boot"])

    def __post_init__(self) -> None:
        self.config = self.app.config
        self.logger = logging.getLogger("lmcache.engine")
        self.lock = threading.Lock()
        self.cache_config = CacheConfig(ttl=60, app_config=self.app.config)
        self.holder = Registry(config=self.app.config)
        self.delegate = Delegating(self.app)

    def note(self, line: str) -> int:
        """Keep a log line (at most 100)."""
        self.log_lines.append(str(line))
        del self.log_lines[:-100]
        return len(self.log_lines)

    def window(self, n: int) -> list[str]:
        """The last ``n`` log lines, the ring wrapping round (refers to the same lines)."""
        lines = self.log_lines
        return [lines[i % len(lines)] for i in range(int(n))]

    def echo(self, *args: object) -> object:
        return args


def install(app: Flask) -> Engine:
    """Put the host's objects under ``app.state``, the way the component does."""
    app.config.update(SECRET_KEY=CONFIG_CANARY, COMMON_API_TOKEN=TOKEN_CANARY)
    state = getattr(app, "state", None)
    if state is None:
        state = app.state = types.SimpleNamespace()  # type: ignore[attr-defined]
    engine = Engine(app)
    state.engine = engine
    state._admin_token = ADMIN_CANARY
    state.settings = types.SimpleNamespace(mode="prod", _db_password=ADMIN_CANARY)
    state.registry = engine.registry
    state.history = engine.history
    state.cache_client = engine.client
    if not hasattr(state, "lmcache_adapter"):  # the seed's example reads this path
        state.lmcache_adapter = types.SimpleNamespace(lmcache_engine=engine)
    return engine


def create_app() -> Flask:
    """The served host: the blueprint, the objects above and a critical 0.2 s thread."""
    from common_api import ThreadLevel, bp, create_periodic_thread

    app = ComponentApp(__name__)
    app.register_blueprint(bp)
    install(app)
    beats = [0]

    def heartbeat() -> bool:
        beats[0] += 1
        return True

    create_periodic_thread("engine-heartbeat", 0.2, heartbeat,
                           level=ThreadLevel.CRITICAL).start()

    @app.get("/host/ttl")
    def ttl() -> dict[str, object]:
        l1 = app.state.engine.l1  # type: ignore[attr-defined]
        return {"write_ttl_seconds": l1.write_ttl_seconds, "pid": os.getpid(),
                "history": list(app.state.history)}  # type: ignore[attr-defined]

    return app
