"""Honest scripts through ScriptRunner: issue 2's semantics on live objects."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from common_api.sandbox import ScriptError, ScriptOutcome, ScriptRunner, ScriptSettings

SEED_SCRIPT = """\
lmcache_engine = app.state.lmcache_adapter.lmcache_engine

result = {
    "is_first_rank": lmcache_engine.metadata.is_first_rank(),
    "model_version": lmcache_engine.metadata.kv_shape,
}
"""


def run(runner: ScriptRunner, app: Flask, source: str) -> str:
    return runner.run(source, app, client="127.0.0.1").render()


def error_of(runner: ScriptRunner, app: Flask, source: str) -> str:
    with pytest.raises(ScriptError) as info:
        runner.run(source, app)
    reason = str(info.value)
    assert "Traceback" not in reason and 'File "' not in reason
    return reason


def test_seed_example_against_live_objects(runner: ScriptRunner, app: Flask) -> None:
    assert run(runner, app, SEED_SCRIPT) == (
        "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}"
    )


def test_default_result(runner: ScriptRunner, app: Flask) -> None:
    assert run(runner, app, "x = 1\n") == "Script executed successfully"


def test_result_is_str_of_value(runner: ScriptRunner, app: Flask) -> None:
    assert run(runner, app, "result = [1, (2, 3), {'a': None}]") == "[1, (2, 3), {'a': None}]"
    assert run(runner, app, "result = 'plain text'") == "plain text"


EVERYDAY = """\
def factorial(n):
    return 1 if n <= 1 else n * factorial(n - 1)

def squares(limit):
    for i in range(limit):
        yield i * i

class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def norm2(self):
        return self.x ** 2 + self.y ** 2
    def __repr__(self):
        return f"Point({self.x}, {self.y})"

class Point3(Point):
    def __init__(self, x, y, z):
        Point.__init__(self, x, y)
        self.z = z

class Oops(ValueError):
    pass

scale = 10
def scaled(v):
    return v * scale          # functions see the script's top-level names

caught = []
for exc_class in (KeyError, IndexError, ZeroDivisionError, Oops):
    try:
        raise exc_class("boom")
    except (LookupError, ArithmeticError, ValueError) as exc:
        caught.append(exc.args[0])
    finally:
        pass

counts = {}
for word in "a b a c b a".split():
    counts[word] = counts.get(word, 0) + 1

total = 0
for i, (k, v) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])):
    total += i * v

p = Point(3, 4)
p.x += 1
grid = [[0] * 2 for _ in range(2)]
grid[0][1] += 5

def outer():
    n = 0
    def bump():
        nonlocal n
        n += 1
        return n
    bump()
    return bump()

if (w := len(caught)) > 3:
    flag = True

result = {
    "fact": factorial(10),
    "squares": list(squares(5)),
    "gen_sum": sum(x for x in range(10) if x % 2),
    "sets": sorted({c for c in "hello"}),
    "dict": {k: v for k, v in zip("ab", [1, 2])},
    "minmax": (min([3, 1, 2]), max(3, 9)),
    "isinstance": isinstance(p, Point) and isinstance(Point3(1, 2, 3), Point),
    "norm": p.norm2(),
    "repr": repr(p),
    "caught": caught,
    "counts": counts,
    "total": total,
    "scaled": scaled(4),
    "grid": grid,
    "closure": outer(),
    "walrus": w,
    "fmt": f"{3.14159:.2f}|{'x'!r}|{7:>3}",
    "strs": "-".join(s.upper() for s in ["a", "b"]) + " ".strip(),
    "slices": list(range(10))[2:8:2],
    "star": max(*[4, 8, 2]),
}
"""


def test_everyday_python(runner: ScriptRunner, app: Flask) -> None:
    out = runner.run(EVERYDAY, app).result
    namespace = eval(out, {"__builtins__": {}})  # our own output, plain literals
    assert namespace["fact"] == 3628800
    assert namespace["squares"] == [0, 1, 4, 9, 16]
    assert namespace["gen_sum"] == 25
    assert namespace["sets"] == ["e", "h", "l", "o"]
    assert namespace["dict"] == {"a": 1, "b": 2}
    assert namespace["minmax"] == (1, 9)
    assert namespace["isinstance"] is True
    assert namespace["norm"] == 32
    assert namespace["repr"] == "Point(4, 4)"
    assert namespace["caught"] == ["boom"] * 4
    assert namespace["counts"] == {"a": 3, "b": 2, "c": 1}
    assert namespace["total"] == 4
    assert namespace["scaled"] == 40
    assert namespace["grid"] == [[0, 5], [0, 0]]
    assert namespace["closure"] == 2
    assert namespace["walrus"] == 4
    assert namespace["fmt"] == "3.14|'x'|  7"
    assert namespace["strs"] == "A-B"
    assert namespace["slices"] == [2, 4, 6]
    assert namespace["star"] == 8


def test_context_manager_class(runner: ScriptRunner, app: Flask) -> None:
    source = """\
log = []
class Managed:
    def __enter__(self):
        log.append("in")
        return self
    def __exit__(self, *exc):
        log.append("out")
        return False
with Managed() as m:
    log.append("body")
result = log
"""
    assert run(runner, app, source) == "['in', 'body', 'out']"


def test_allowed_imports_public_functions(runner: ScriptRunner, app: Flask) -> None:
    source = """\
import math, json, statistics, re, datetime, collections, itertools, hashlib
from math import pi
import json as j
result = [
    math.sqrt(16), round(pi, 2), json.dumps({"a": [1, 2]}), j.loads("[1]"),
    statistics.mean([1, 2, 3, 4]), statistics.median([5, 1, 3]),
    re.findall(r"\\d+", "a1b22"), re.compile("(b+)").search("abbc").group(1),
    datetime.datetime(2024, 1, 2, 3, 4).isoformat(), datetime.timedelta(days=1).total_seconds(),
    collections.Counter("abca").most_common(1), list(itertools.chain.from_iterable([[1], [2]])),
    hashlib.sha256(b"x").hexdigest()[:8],
]
"""
    assert run(runner, app, source) == (
        "[4.0, 3.14, '{\"a\": [1, 2]}', [1], 2.5, 3, ['1', '22'], 'bb', "
        "'2024-01-02T03:04:00', 86400.0, [('a', 2)], [1, 2], '2d711642']"
    )


@pytest.mark.parametrize(
    ("source", "module"),
    [("import os", "os"), ("from os import path", "os"), ("import subprocess", "subprocess"),
     ("import os.path", "os.path"), ("import sys", "sys"), ("import importlib", "importlib")],
)
def test_disallowed_import_exact_text(runner: ScriptRunner, app: Flask, source: str,
                                      module: str) -> None:
    # "os" is in this runner's allowed imports: it is still refused (never importable).
    assert error_of(runner, app, source) == f"Import of {module!r} is not allowed"


def test_import_error_can_be_caught(runner: ScriptRunner, app: Flask) -> None:
    source = "try:\n    import socket\nexcept ImportError as e:\n    result = e.args[0]\n"
    assert run(runner, app, source) == "Import of 'socket' is not allowed"


def test_allowed_module_hides_modules_and_classes(runner: ScriptRunner, app: Flask) -> None:
    assert "AttributeError" in error_of(runner, app, "import json\nresult = json.codecs")
    assert "AttributeError" in error_of(runner, app, "import json\nresult = json.JSONEncoder")
    assert "AttributeError" in error_of(runner, app, "import re\nresult = re.enum")


def test_captured_print_and_render(runner: ScriptRunner, app: Flask) -> None:
    outcome = runner.run("print('hello')\nprint('a', 'b', sep='-')\nresult = 42", app)
    assert outcome == ScriptOutcome(result="42", output="hello\na-b\n")
    assert outcome.render() == "hello\na-b\n42"
    assert ScriptOutcome(result="r", output="no newline").render() == "no newline\nr"
    assert ScriptOutcome(result="only").render() == "only"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("x", "NameError: name 'x' is not defined"),
        ("result = 1 / 0", "ZeroDivisionError: division by zero"),
        ("raise ValueError('bad value')", "ValueError: bad value"),
        ("{}['k']", "KeyError: 'k'"),
        ("def f(:\n  pass", "SyntaxError: invalid syntax (line 1)"),
        ("x = 1\ny = (", "SyntaxError: '(' was never closed (line 2)"),
    ],
)
def test_error_texts(runner: ScriptRunner, app: Flask, source: str, reason: str) -> None:
    assert error_of(runner, app, source) == reason


def test_error_has_line_number(runner: ScriptRunner, app: Flask) -> None:
    with pytest.raises(ScriptError) as info:
        runner.run("a = 1\nb = 2\nc = missing\n", app)
    assert info.value.lineno == 3


def test_policy_rejections_name_the_rule(runner: ScriptRunner, app: Flask) -> None:
    assert error_of(runner, app, "x = ().__class__").startswith("Script rejected:")
    assert "(line 2)" in error_of(runner, app, "a = 1\n_hidden = 2\n")
    assert error_of(runner, app, "match 1:\n    case 1:\n        pass").startswith(
        "Script rejected: Match statements are not allowed"
    )


def test_host_exception_message_only(runner: ScriptRunner, app: Flask) -> None:
    engine = "e = app.state.lmcache_adapter.lmcache_engine.metadata\n"
    assert error_of(runner, app, engine + "e.explode()") == "ValueError: host says no"
    caught = engine + "try:\n    e.explode_custom()\nexcept RuntimeError as x:\n    result = x.args"
    assert run(runner, app, caught) == "('custom host failure',)"


def test_host_objects_by_value_and_methods(runner: ScriptRunner, app: Flask) -> None:
    source = """\
engine = app.state.lmcache_adapter.lmcache_engine
result = (engine.settings, engine.lookup("model"), engine.lookup(key="x", default=5),
          engine.metadata.ranks, len(engine.metadata.ranks), app.state.counter,
          engine.echo(engine.metadata.kv_shape, flag=True), app.name)
"""
    assert run(runner, app, source) == (
        "({'model': 'demo', 'layers': (1, 2)}, 'demo', 5, [0, 1, 2, 3], 4, 0, "
        "(((27, 1, 64, 1, 576),), {'flag': True}), 'sandbox.helpers')"
    )


@pytest.mark.parametrize("path", ["app", "logger", "lock", "module", "_private"])
def test_host_refuses_framework_objects(runner: ScriptRunner, app: Flask, path: str) -> None:
    source = f"result = getattr(app.state.lmcache_adapter.lmcache_engine, {path!r})"
    assert error_of(runner, app, source).startswith("AttributeError:")


def test_functions_see_top_level_names(runner: ScriptRunner, app: Flask) -> None:
    source = "def f():\n    return helper() + base\ndef helper():\n    return 1\nbase = 41\n"
    assert run(runner, app, source + "result = f()") == "42"


def test_timeout_names_the_limit(app: Flask) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=1.0))
    try:
        started = time.monotonic()
        with pytest.raises(ScriptError, match=r"^Script timed out after 1 seconds$"):
            runner.run("while True:\n    pass\n", app)
        assert time.monotonic() - started < 2.0
        assert runner.run("result = 'alive'", app).result == "alive"
    finally:
        runner.close()


def test_no_state_survives_between_scripts(runner: ScriptRunner, app: Flask) -> None:
    run(runner, app, "leftover = 1\nclass Kept:\n    value = 2\n")
    assert error_of(runner, app, "result = leftover") == (
        "NameError: name 'leftover' is not defined"
    )
    assert "cannot be modified" in error_of(runner, app, "import json\njson.dumps = None")
    assert run(runner, app, "import json\nresult = json.dumps(1)") == "1"
