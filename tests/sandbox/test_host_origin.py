"""Host origin: an allowlist of packages, judged over the whole class hierarchy.

No secret of ``app.config``, no underscore attribute and no framework object reaches a
script through any host object, whatever the host object refers to.
"""

from __future__ import annotations

import abc
import logging
import types
import typing
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.config import Config
from sandbox.helpers import assert_no_canary, make_app
from sandbox.hosts import lmcache_host

from common_api import CommonApi, config
from common_api.errors import ConfigurationError
from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings
from common_api.sandbox.origin import HostOrigin


class HostConfig(Config):
    """A host subclass of flask.Config: still a Config."""


class HostLogger(logging.Logger):
    """A host subclass of logging.Logger: still a Logger."""


class Plain(abc.ABC):
    @abc.abstractmethod
    def value(self) -> int: ...


class Generic(typing.Generic[typing.T]):  # type: ignore[name-defined]
    pass


def test_host_packages_come_from_the_import_name_and_the_setting() -> None:
    assert HostOrigin.for_app(Flask("mypkg.app")).packages == ("mypkg",)
    assert HostOrigin.for_app(Flask("__main__")).packages == ("__main__",)
    assert HostOrigin.for_app(Flask("common_api.demo")).packages == ("common_api.demo",)
    assert HostOrigin.for_app(Flask("flask.app")).packages == ()
    origin = HostOrigin.for_app(Flask("mypkg.app"), ["vendor_engine", "logging", "flask"])
    assert origin.packages == ("mypkg", "vendor_engine")  # never stdlib or frameworks
    assert origin.module_ok("vendor_engine.cache") and not origin.module_ok("vendor_engineering")


def test_a_class_deriving_from_a_framework_or_stdlib_class_is_that_class() -> None:
    origin = HostOrigin(["sandbox", __name__.split(".")[0]])
    assert not origin.class_ok(lmcache_host.ComponentApp)  # a Flask subclass
    assert not origin.class_ok(HostConfig)
    assert not origin.class_ok(HostLogger)
    assert origin.class_ok(Plain) and origin.class_ok(Generic)  # neutral bases
    assert origin.class_ok(lmcache_host.Registry)  # a dict subclass: its own part only
    assert not origin.class_ok(lmcache_host.RedisLikeClient)  # third-party
    assert origin.class_ok(types.SimpleNamespace)


def test_the_setting_is_validated_naming_the_key() -> None:
    values = config.resolve({config.SCRIPT_HOST_PACKAGES: "vendor_a, vendor_b.sub"}, environ={})
    assert values[config.SCRIPT_HOST_PACKAGES] == ("vendor_a", "vendor_b.sub")
    with pytest.raises(ValueError, match=config.SCRIPT_HOST_PACKAGES):
        config.resolve({config.SCRIPT_HOST_PACKAGES: "not a name"}, environ={})
    for bad in ("flask", "os", "common_api"):  # the sandbox's own knowledge, at registration
        with pytest.raises(ConfigurationError, match=f"{config.SCRIPT_HOST_PACKAGES}: {bad!r}"):
            CommonApi(Flask("host_packages"), script_host_packages=bad)


def test_a_listed_third_party_package_becomes_host_code() -> None:
    app = make_app()
    runner = ScriptRunner(ScriptSettings(timeout=5, host_packages=frozenset({"redis"})))
    try:
        assert runner.run("result = app.state.cache_client.keys()", app).result == (
            "['session:admin']")
    finally:
        runner.close()


@pytest.fixture(scope="module")
def host_runner() -> Iterator[ScriptRunner]:
    runner = ScriptRunner(ScriptSettings(timeout=5))
    yield runner
    runner.close()


LEAKS = [
    "result = app.state.engine.config",
    "result = app.state.engine.config['SECRET_KEY']",
    "result = app.state.engine.app.config",
    "result = app.state.engine.app.secret_key",
    "result = app.state.engine.delegate.config",
    "result = app.state.engine.delegate.secret_key",
    "result = app.state.engine.holder['config']",
    "result = list(app.state.engine.holder)",
    "result = app.state.engine.cache_config.app_config",
    "result = getattr(app.state.engine.cache_config, '_' + 'token')",
    "result = app.state.engine.logger",
    "result = app.state.engine.lock",
    "result = app.state.cache_client.get('session:admin')",
    "result = getattr(app.state, '_admin' + '_token')",
]


@pytest.mark.parametrize("source", LEAKS)
def test_no_secret_or_framework_object_through_any_host_object(
        host_runner: ScriptRunner, source: str) -> None:
    app = make_app()
    try:
        text = host_runner.run(source, app).render()
    except ScriptError as exc:
        text = str(exc)
        assert text.startswith("AttributeError:"), text
    assert_no_canary(text)
    assert "Config" not in text or "not accessible" in text


@pytest.mark.parametrize(("source", "expected"), [
    ("result = repr(app.state.settings)", "namespace(mode='prod')"),
    ("result = str(app.state.engine.cache_config)",
     "CacheConfig(ttl=60, app_config=<Config object>)"),
    ("result = repr(app.state.engine.holder)", "Registry({'config': <Config object>})"),
    ("result = repr(app.state.registry)", "Registry({'llama': 1, 'mistral': 2})"),
    ("result = repr(app.state.history)", "History(['started'])"),
])
def test_reprs_show_only_what_a_script_could_read(host_runner: ScriptRunner, source: str,
                                                  expected: str) -> None:
    assert host_runner.run(source, make_app()).result == expected


def test_repr_of_app_state_hides_underscores_and_framework_objects(
        host_runner: ScriptRunner) -> None:
    text = host_runner.run("result = repr(app.state)", make_app()).result
    assert_no_canary(text)
    assert "_admin_token" not in text and "engine=Engine(app=<ComponentApp object>" in text


def test_a_missing_attribute_reads_like_python(host_runner: ScriptRunner) -> None:
    with pytest.raises(ScriptError) as info:
        host_runner.run("result = app.state.engine.x", make_app())
    assert str(info.value) == "AttributeError: 'Engine' object has no attribute 'x'"
    source = "result = getattr(app.state.engine.l1, 'nothing', 'fallback')"
    assert host_runner.run(source, make_app()).result == "fallback"
