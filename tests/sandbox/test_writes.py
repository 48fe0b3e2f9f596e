"""Writes that reconfigure, and nothing more; and the small robustness fixes of issue 10.

A script may assign plain data (None, bool, int, float, str, tuples of these) to an
existing plain-data public attribute of a host object; the worker performs it and the
audit record lists it. Everything else is refused with a message and changes nothing.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from sandbox.helpers import TOKEN_CANARY, make_app

from common_api import bp
from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

RECONFIGURE = "app.state.engine.l1.write_ttl_seconds = 30\nresult = 'ok'\n"


@pytest.fixture(scope="module")
def writer() -> Iterator[ScriptRunner]:
    runner = ScriptRunner(ScriptSettings(timeout=5, allowed_imports=frozenset({"math"})))
    yield runner
    runner.close()


def test_the_lmcache_reconfiguration_script_works(writer: ScriptRunner) -> None:
    app = make_app()
    writes: list[dict[str, str]] = []
    assert writer.run(RECONFIGURE, app, writes=writes).result == "ok"
    assert app.state.engine.l1.write_ttl_seconds == 30  # type: ignore[attr-defined]
    assert writes == [{"path": "app.state.engine.l1.write_ttl_seconds",
                       "old": "int", "new": "int"}]


def test_plain_values_of_every_kind_and_augmented_assignment(writer: ScriptRunner) -> None:
    app = make_app()
    source = ("l1 = app.state.engine.l1\nl1.eviction = 'fifo'\n"
              "l1.tiers = ('cpu', 'disk', 'ssd')\nl1.max_entries += 5\n"
              "setattr(l1, 'write_ttl_seconds', 2.5)\nresult = l1.max_entries\n")
    assert writer.run(source, app).result == "10005"
    l1 = app.state.engine.l1  # type: ignore[attr-defined]
    assert (l1.eviction, l1.tiers, l1.write_ttl_seconds) == (
        "fifo", ("cpu", "disk", "ssd"), 2.5)


REFUSED = [
    ("app.state.engine.l1.marker = 1", "may only change existing attributes"),
    ("setattr(app.state.engine.l1, '_' + 'evicted', 1)", "cannot set attribute '_evicted'"),
    ("app.state.engine.l1.on_evict = None", "not a plain setting"),
    ("app.state.engine.l1.backend = 'x'", "not a plain setting"),
    ("app.state.engine.l1.write_ttl_seconds = lambda: 1", "'function' object"),
    ("app.state.engine.l1.write_ttl_seconds = app.state.engine", "host object"),
    ("import math\napp.state.engine.l1.write_ttl_seconds = math", "'ModuleFacade' object"),
    ("app.state.engine.l1.write_ttl_seconds = [1]", "'list' object"),
    ("app.state.engine.l1.tiers = (1, [2])", "'tuple' object"),
    ("class C:\n    pass\napp.state.engine.l1.eviction = C", "'type' object"),
    ("app.name = 'x'", "app is read-only"),
    ("app.state.engine.logger.name = 'x'", "not accessible"),
    ("app.state.engine.config.SECRET_KEY = 'x'", "not accessible"),
    ("app.state.history.append('x')", "not host code"),
    ("app.state.engine.l1[0] = 1", "cannot store items"),
    ("del app.state.engine.l1.eviction", "cannot delete"),
    ("app.state.engine.l1.eviction = 'x' * 70000", "only None, bool"),
]


def _snapshot(app: Flask) -> object:
    engine = app.state.engine  # type: ignore[attr-defined]
    return (dict(vars(engine.l1)), list(app.state.history), dict(app.state.registry),  # type: ignore[attr-defined]
            engine.logger.name, dict(app.config), app.import_name)


@pytest.mark.parametrize(("source", "message"), REFUSED)
def test_refused_writes_change_nothing(writer: ScriptRunner, source: str, message: str) -> None:
    app = make_app()
    before = _snapshot(app)
    writes: list[dict[str, str]] = []
    with pytest.raises(ScriptError) as info:
        writer.run(source, app, writes=writes)
    assert message in str(info.value)
    assert _snapshot(app) == before
    assert writes == []


def test_writes_before_a_failure_are_still_reported(writer: ScriptRunner) -> None:
    app = make_app()
    writes: list[dict[str, str]] = []
    with pytest.raises(ScriptError, match="ZeroDivisionError"):
        writer.run("app.state.engine.l1.write_ttl_seconds = 5\n1 / 0\n", app, writes=writes)
    assert [w["path"] for w in writes] == ["app.state.engine.l1.write_ttl_seconds"]


def test_the_audit_record_of_the_view_lists_each_write(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    app.config["COMMON_API_SCRIPT_ENABLED"] = True
    app.register_blueprint(bp)
    caplog.set_level(logging.INFO, logger="common_api.audit")
    response = app.test_client().post(
        "/run_script", data={"script": (io.BytesIO(RECONFIGURE.encode()), "s.py")},
        content_type="multipart/form-data", headers={"Authorization": f"Bearer {TOKEN_CANARY}"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    entries = [json.loads(r.getMessage()) for r in caplog.records if r.name == "common_api.audit"]
    assert entries[-1]["writes"] == [{"path": "app.state.engine.l1.write_ttl_seconds",
                                      "old": "int", "new": "int"}]
    assert app.state.engine.l1.write_ttl_seconds == 30  # type: ignore[attr-defined]


# -- robustness -------------------------------------------------------------------------

def test_dunder_import_is_the_guarded_import(writer: ScriptRunner) -> None:
    assert writer.run("result = __import__('math').sqrt(16)", make_app()).result == "4.0"
    with pytest.raises(ScriptError, match=r"^Import of 'os' is not allowed$"):
        writer.run("__import__('os')", make_app())
    with pytest.raises(ScriptError, match="Script rejected"):
        writer.run("__import__ = 1", make_app())


def test_future_annotations_work(writer: ScriptRunner) -> None:
    source = ("from __future__ import annotations\nlimit: int = 3\n"
              "def f(x: Engine) -> list[int]:\n    return [x] * limit\nresult = f(1)\n")
    assert writer.run(source, make_app()).result == "[1, 1, 1]"


def test_surrogates_in_result_and_output_come_back_escaped(writer: ScriptRunner) -> None:
    outcome = writer.run("print('a\\udc80b')\nresult = 'x\\ud800y'", make_app())
    assert outcome.render() == "a\\udc80b\nx\\ud800y"
    with pytest.raises(ScriptError) as info:
        writer.run("raise ValueError('\\udfff')", make_app())
    assert str(info.value) == "ValueError: \\udfff"


def test_surrogates_reach_the_host_and_back(writer: ScriptRunner) -> None:
    result = writer.run("result = ascii(app.state.engine.echo('\\ud800'))", make_app()).result
    assert result == "('\\ud800',)"


# -- issue 16: writes keep the attribute's type; paths and records are bounded ---------

TYPE_CHANGES = [
    ("app.state.counter = 'paused'", "int"),
    ("app.state.engine.l1.write_ttl_seconds = '30'", "int"),
    ("app.state.engine.l1.write_ttl_seconds = True", "int"),
    ("app.state.engine.l1.write_ttl_seconds = float('inf')", "finite"),
    ("app.state.engine.l1.write_ttl_seconds = float('nan')", "finite"),
    ("app.state.engine.l1.write_ttl_seconds = None", "None"),
    ("app.state.engine.l1.eviction = None", "None"),
    ("app.state.engine.l1.eviction = 3", "str"),
    ("app.state.engine.l1.tiers = 'cpu'", "tuple"),
    ("app.state.engine.l1.tiers = ('cpu', (2, None))", "'tuple' item"),
    ("app.state.engine.l1.tiers = ('cpu', 2)", "'int' item"),
]


@pytest.mark.parametrize(("source", "message"), TYPE_CHANGES)
def test_a_write_that_changes_the_type_is_refused_and_changes_nothing(
        writer: ScriptRunner, source: str, message: str) -> None:
    app = make_app()
    before = _snapshot(app), app.state.counter  # type: ignore[attr-defined]
    writes: list[dict[str, str]] = []
    with pytest.raises(ScriptError, match=r"^(TypeError|ValueError): cannot set") as info:
        writer.run(source, app, writes=writes)
    assert message in str(info.value)
    assert (_snapshot(app), app.state.counter) == before  # type: ignore[attr-defined]
    assert writes == []


def test_int_and_float_replace_each_other_and_none_takes_any_plain_value(
        writer: ScriptRunner) -> None:
    app = make_app()
    app.state.engine.l1.unset = None  # type: ignore[attr-defined]
    source = ("l1 = app.state.engine.l1\nl1.write_ttl_seconds = 2.5\n"
              "l1.write_ttl_seconds = 7\nl1.unset = 'now set'\nresult = 'ok'\n")
    assert writer.run(source, app).result == "ok"
    l1 = app.state.engine.l1  # type: ignore[attr-defined]
    assert (l1.write_ttl_seconds, l1.unset) == (7, "now set")


def test_a_handle_path_longer_than_256_characters_is_refused(writer: ScriptRunner) -> None:
    from sandbox.hosts.linked import chain

    app = make_app()
    app.state.chain = chain(5000)  # type: ignore[attr-defined]
    walk = "n = app.state.chain\nfor i in range(5000):\n    n = n.next\nresult = n.index\n"
    with pytest.raises(ScriptError, match="256 characters") as info:
        writer.run(walk, app)
    assert "ValueError" in str(info.value)
    short = "n = app.state.chain\nfor i in range(20):\n    n = n.next\nresult = n.index\n"
    assert writer.run(short, app).result == "20"


def test_an_audit_line_holds_at_most_100_write_records(
        writer: ScriptRunner, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    caplog.set_level(logging.INFO, logger="common_api.sandbox.scripts")
    writes: list[dict[str, str]] = []
    source = "l1 = app.state.engine.l1\nfor i in range(500):\n    l1.max_entries = i\n"
    writer.run(source, app, writes=writes)
    assert len(writes) == 101 and writes[-1] == {"omitted": "400"}
    assert app.state.engine.l1.max_entries == 499  # type: ignore[attr-defined]
    line = next(r.getMessage() for r in caplog.records
                if r.name == "common_api.sandbox.scripts")
    assert line.count("max_entries") == 100 and "400 more" in line
    assert len(line) < 10_000


FORGED = ('raise ValueError("boom\\nINFO common_api.audit: {\\"client\\": \\"10.9.8.7\\", '
          '\\"status\\": 200}\\r\\x1b[2K\\x00 done")')


def test_script_text_is_escaped_before_it_reaches_a_log_line(
        writer: ScriptRunner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="common_api")
    with pytest.raises(ScriptError):
        writer.run(FORGED, make_app())
    with pytest.raises(ScriptError):
        writer.run("setattr(app.state.engine.l1, 'x\\n\\x1b[31mINFO forged', 1)", make_app())
    lines = [r.getMessage() for r in caplog.records]
    assert lines
    for line in lines:
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in line), repr(line)
    assert any("boom\\nINFO common_api.audit" in line for line in lines)
