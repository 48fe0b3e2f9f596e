"""Shared pieces of the sandbox tests: live host objects, a Flask app with canaries."""

from __future__ import annotations

import os
import threading
import types
from pathlib import Path

from flask import Flask
from sandbox.hosts.lmcache_host import HOST_CANARIES, ComponentApp, install

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
NAIVE_HARNESS = HERE / "naive_harness.py"

CONFIG_CANARY = "cfg-canary-5e1d09"
TOKEN_CANARY = "tok-canary-a83c21"
ENV_CANARY = "env-canary-77f0b2"
ENV_CANARY_NAME = "HOST_TEST_DB_PASSWORD"
CANARIES = (CONFIG_CANARY, TOKEN_CANARY, ENV_CANARY, *HOST_CANARIES)

#: Modules both the runner and the naive harness allow in the corpus runs.
CORPUS_IMPORTS = frozenset(
    {"json", "re", "datetime", "string", "operator", "functools", "statistics", "time",
     "collections", "math", "random"}
)
HONEST_IMPORTS = CORPUS_IMPORTS | {"os", "itertools", "hashlib"}
#: The allowlist an operator plausibly writes for inspection scripts (issue 16): the
#: modules the sandbox prepares for, plus copy, enum, pprint, textwrap, base64,
#: mimetypes, and mailcap and uu (shipped up to Python 3.12).
WIDE_IMPORTS = frozenset(
    {"collections", "datetime", "time", "decimal", "fractions", "statistics", "random",
     "hashlib", "uuid", "itertools", "functools", "copy", "enum", "pprint", "textwrap",
     "base64", "mimetypes", "mailcap", "uu", "json", "math", "re", "operator", "string"}
)


class Heartbeat:
    """A worker thread doing periodic work, like the host's periodic threads: a script that
    starves the worker shows as ticks that stop."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.ticks += 1


class Metadata:
    """The seed's ``lmcache_engine.metadata``."""

    kv_shape = (27, 1, 64, 1, 576)

    def __init__(self) -> None:
        self.world_size = 4
        self.ranks = [0, 1, 2, 3]

    def is_first_rank(self) -> bool:
        return True

    def explode(self) -> None:
        raise ValueError("host says no")

    def explode_custom(self) -> None:
        raise HostFailure("custom host failure")


class HostFailure(RuntimeError):
    """A host-defined exception class."""


class Engine:
    def __init__(self, app: Flask) -> None:
        self.metadata = Metadata()
        self.app = app  # a host object that refers back to the Flask app
        self.logger = __import__("logging").getLogger("engine")
        self.lock = threading.Lock()
        self.module = os
        self._private = "private"
        self.settings = {"model": "demo", "layers": (1, 2)}

    def lookup(self, key: str, default: object = None) -> object:
        return self.settings.get(key, default)

    def echo(self, *args: object, **kwargs: object) -> object:
        return (args, kwargs)


class Gate:
    """A host object whose method blocks the worker thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def wait(self) -> str:
        self.entered.release()
        self.release.wait(30)
        return "released"


def make_app() -> Flask:
    """The host subclasses Flask; its import name ("sandbox.helpers") makes the
    ``sandbox`` package host code. ``app.state`` holds the seed's objects and the
    realistic host's (:mod:`sandbox.hosts.lmcache_host`)."""
    app = ComponentApp(__name__)
    app.config.update(SECRET_KEY=CONFIG_CANARY, COMMON_API_TOKEN=TOKEN_CANARY)
    engine = Engine(app)
    app.state = types.SimpleNamespace(  # type: ignore[attr-defined]
        lmcache_adapter=types.SimpleNamespace(lmcache_engine=engine),
        gate=Gate(),
        counter=0,
    )
    install(app)
    return app




def assert_no_canary(*texts: object) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in str(text), f"secret leaked: {text!r}"
