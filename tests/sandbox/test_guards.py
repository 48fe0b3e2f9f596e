"""The script's builtins and imports (issue 16, point 1).

A module an operator allows exposes only what common_api vetted in it; the builtins are
closures over state no script can reach, so copying them copies nothing of the guard; a
vetted class hands out no unbound method that accepts any ``self``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sandbox.helpers import TOKEN_CANARY, make_app

from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

#: What an operator plausibly allows for inspection scripts (issue 16).
WIDE = frozenset({
    "collections", "datetime", "time", "decimal", "fractions", "statistics", "random",
    "hashlib", "uuid", "itertools", "functools", "copy", "enum", "pprint", "textwrap",
    "base64", "mimetypes", "json", "math", "re", "operator", "string",
})


@pytest.fixture(scope="module")
def wide() -> Iterator[ScriptRunner]:
    runner = ScriptRunner(ScriptSettings(allowed_imports=WIDE, timeout=5.0))
    yield runner
    runner.close()


def _run(runner: ScriptRunner, source: str) -> str:
    return runner.run(source, make_app()).result


def test_a_vetted_module_exports_its_table_and_nothing_else(wide: ScriptRunner) -> None:
    assert _run(wide, "import time\nresult = time.time() > 0") == "True"
    for name in ("clock_settime_ns", "clock_settime", "tzset", "pthread_getcpuclockid"):
        with pytest.raises(ScriptError, match="has no attribute"):
            _run(wide, f"import time\nresult = time.{name}")
    with pytest.raises(ScriptError, match="cannot import name"):
        _run(wide, "from time import clock_settime_ns")


@pytest.mark.parametrize("module", ["enum", "mimetypes"])
def test_a_module_without_a_vetted_table_is_not_importable(wide: ScriptRunner,
                                                           module: str) -> None:
    with pytest.raises(ScriptError, match=rf"^Import of '{module}' is not allowed$"):
        _run(wide, f"import {module}")


def test_the_grant_names_each_unvetted_module_and_how_to_ask_for_names() -> None:
    from common_api.sandbox.imports import grant

    granted = grant(["json", "enum", "mimetypes:guess_type", "os", "time:clock_settime"])
    assert set(granted.modules) == {"json", "mimetypes"}
    assert granted.modules["mimetypes"] == frozenset({"guess_type"})
    problems = "\n".join(granted.problems)
    assert "enum" in problems and "enum:NAME" in problems
    assert "'os'" in problems and "never importable" in problems
    assert "time:clock_settime" in problems


def test_registration_warns_once_about_an_unvetted_module(
        caplog: pytest.LogCaptureFixture) -> None:
    from common_api import bp

    caplog.set_level(logging.WARNING, logger="common_api")
    app = make_app()
    app.config["COMMON_API_SCRIPT_ALLOWED_IMPORTS"] = ["json", "mimetypes"]
    app.register_blueprint(bp)
    lines = [r.getMessage() for r in caplog.records if "mimetypes" in r.getMessage()]
    assert len(lines) == 1 and "mimetypes:NAME" in lines[0], lines
    served = app.test_client().get("/env", headers={"Authorization": f"Bearer {TOKEN_CANARY}"})
    assert served.status_code == 200  # it serves as usual


def test_a_named_function_of_an_unvetted_module_is_importable() -> None:
    runner = ScriptRunner(ScriptSettings(allowed_imports=frozenset({"mimetypes:guess_type"}),
                                         timeout=5.0))
    try:
        assert _run(runner, "import mimetypes\nresult = mimetypes.guess_type('a.json')[0]"
                    ) == "application/json"
        with pytest.raises(ScriptError, match="has no attribute"):
            _run(runner, "import mimetypes\nresult = mimetypes.read_mime_types")
    finally:
        runner.close()


def test_copying_a_builtin_copies_nothing_of_the_guard(wide: ScriptRunner) -> None:
    source = ("import copy\n"
              "same = [copy.deepcopy(f) is f for f in (getattr, setattr, __import__, print)]\n"
              "result = same\n")
    assert _run(wide, source) == "[True, True, True, True]"
    with pytest.raises(ScriptError, match="TypeError"):
        _run(wide, "import copy\nm = {}\nresult = copy.deepcopy([1], m)")


def test_a_deepcopy_memo_cannot_rebind_a_method() -> None:
    runner = ScriptRunner(ScriptSettings(allowed_imports=frozenset({"copy", "collections"}),
                                         timeout=5.0))
    try:
        source = ("import copy, collections\nc = collections.Counter('ab')\n"
                  "m = copy.deepcopy(c.copy, {id(c): int})\nresult = m()\n")
        with pytest.raises(ScriptError, match="TypeError"):
            _run(runner, source)
    finally:
        runner.close()


@pytest.mark.parametrize("source", [
    "import collections\nresult = collections.Counter.copy(int)",
    "import collections\nresult = collections.Counter.most_common",
    "import fractions\nresult = fractions.Fraction.limit_denominator",
    "import uuid\nresult = uuid.UUID.hex",
    "import json\njson.JSONDecodeError.__init__(getattr, 'm', 'd', 0)",
])
def test_a_vetted_class_hands_out_no_unbound_method(wide: ScriptRunner, source: str) -> None:
    with pytest.raises(ScriptError, match="AttributeError"):
        _run(wide, source)


def test_bound_methods_and_constructors_of_vetted_classes_still_work(
        wide: ScriptRunner) -> None:
    source = ("import collections, datetime, fractions, json\n"
              "c = collections.Counter('aab')\n"
              "d = datetime.datetime.fromisoformat('2026-01-02T03:04:05')\n"
              "f = fractions.Fraction.from_float(0.5)\n"
              "result = (c.most_common(1), c.copy()['a'], d.year, str(f),"
              " list(map(str.upper, ['a'])), json.loads('[1]'))\n")
    assert _run(wide, source) == "([('a', 2)], 2, 2026, '1/2', ['A'], [1])"


@pytest.mark.parametrize("target", ["app.state.engine", "__import__('json')"])
def test_host_objects_and_module_facades_cannot_be_copied(wide: ScriptRunner,
                                                          target: str) -> None:
    for how in ("copy.copy", "copy.deepcopy"):
        with pytest.raises(ScriptError, match="cannot be copied"):
            _run(wide, f"import copy\nresult = {how}({target})")


def test_strptime_of_time_and_datetime_works_and_its_import_gives_the_script_nothing(
        ) -> None:
    """Their C code imports _strptime through the script's guarded import: it gets the two
    entry points it calls, and the script reaching for them gets refusals (it had been
    'Import of _strptime is not allowed' on every call)."""
    from sandbox.helpers import make_app

    from common_api.sandbox import ScriptRunner, ScriptSettings

    source = (
        "import time, datetime\n"
        "a = time.strptime('2026-12-07', '%Y-%m-%d')\n"
        "b = datetime.datetime.strptime('2026-12-07 10:11', '%Y-%m-%d %H:%M')\n"
        "m = __import__('_strptime')\n"
        "try:\n"
        "    x = getattr(m, '_strptime_' + 'time')\n"
        "except AttributeError as e:\n"
        "    x = 'refused'\n"
        "result = (a.tm_year, b.hour, x)\n")
    runner = ScriptRunner(ScriptSettings(timeout=5,
                                         allowed_imports=frozenset({"time", "datetime"})))
    try:
        assert runner.run(source, make_app()).result == "(2026, 10, 'refused')"
    finally:
        runner.close()
