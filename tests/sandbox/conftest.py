"""Fixtures of the sandbox tests: a Flask app with canaries, runners."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from sandbox.helpers import ENV_CANARY, ENV_CANARY_NAME, HONEST_IMPORTS, Heartbeat, make_app

from common_api.sandbox import ScriptRunner, ScriptSettings


@pytest.fixture(scope="session", autouse=True)
def env_canary() -> Iterator[None]:
    """The worker's environment holds a secret, as a real deployment's would."""
    old = os.environ.get(ENV_CANARY_NAME)
    os.environ[ENV_CANARY_NAME] = ENV_CANARY
    yield
    if old is None:
        os.environ.pop(ENV_CANARY_NAME, None)
    else:
        os.environ[ENV_CANARY_NAME] = old


@pytest.fixture()
def app() -> Flask:
    return make_app()


@pytest.fixture(scope="module")
def runner() -> Iterator[ScriptRunner]:
    instance = ScriptRunner(ScriptSettings(allowed_imports=HONEST_IMPORTS, timeout=5.0))
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def heartbeat() -> Iterator[Heartbeat]:
    beat = Heartbeat()
    yield beat
    beat.stop.set()
    beat.thread.join(5)
