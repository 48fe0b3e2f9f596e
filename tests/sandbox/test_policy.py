"""The policy pieces on their own: host bridge, wire format, AST policy, guards."""

from __future__ import annotations

import logging
import types

import pytest
from sandbox.helpers import make_app

from common_api.sandbox import protocol
from common_api.sandbox.compiler import CompileFailed, compile_script
from common_api.sandbox.guards import ModuleFacade, OutputCapture, importable, script_builtins
from common_api.sandbox.imports import grant
from common_api.sandbox.proxy import HostBridge


def _bridge() -> tuple[HostBridge, object]:
    app = make_app()
    return HostBridge(app), app


def _get(bridge: HostBridge, handle: int, name: str) -> dict[str, object]:
    return bridge.handle({"op": "getattr", "h": handle, "name": name})


def _walk(bridge: HostBridge, *names: str) -> int:
    handle = 0
    for name in names:
        reply = _get(bridge, handle, name)
        value = reply["ok"]
        assert isinstance(value, dict) and value["t"] == "h", reply
        handle = int(value["v"])  # type: ignore[call-overload]
    return handle


def test_app_exposes_only_its_allowlist() -> None:
    bridge, _ = _bridge()
    for name in ("config", "secret_key", "jinja_env", "view_functions", "extensions",
                 "open_resource", "_got_first_request"):
        assert _get(bridge, 0, name)["err"][0] == "AttributeError"  # type: ignore[index]
    assert _get(bridge, 0, "name") == {"ok": "sandbox.helpers"}


def test_host_policy_by_type() -> None:
    bridge, _ = _bridge()
    engine = _walk(bridge, "state", "lmcache_adapter", "lmcache_engine")
    for name in ("app", "logger", "lock", "module", "_private"):
        assert "err" in _get(bridge, engine, name), name
    assert _get(bridge, engine, "settings") == {
        "ok": {"t": "dict", "v": [["model", "demo"],
                                   ["layers", {"t": "tuple", "v": [1, 2]}]]}
    }
    method = _get(bridge, engine, "lookup")["ok"]
    reply = bridge.handle({"op": "call", "h": method["v"], "args": ["model"], "kwargs": []})  # type: ignore[index]
    assert reply == {"ok": "demo"}


def test_bridge_refuses_foreign_handles_and_app_arguments() -> None:
    bridge, _ = _bridge()
    assert bridge.handle({"op": "getattr", "h": 999, "name": "x"})["err"] == [
        "TypeError", "invalid handle"]
    assert "err" in bridge.handle({"op": "getattr", "h": "0", "name": "state"})
    assert "err" in bridge.handle({"op": "explode", "h": 0})
    engine = _walk(bridge, "state", "lmcache_adapter", "lmcache_engine")
    echo = _get(bridge, engine, "echo")["ok"]["v"]  # type: ignore[index]
    reply = bridge.handle({"op": "call", "h": echo, "args": [{"t": "h", "v": 0}], "kwargs": []})
    assert reply["err"][0] == "TypeError"  # type: ignore[index]


def test_handles_are_deduplicated() -> None:
    bridge, _ = _bridge()
    first = _walk(bridge, "state", "lmcache_adapter")
    assert _walk(bridge, "state", "lmcache_adapter") == first


def test_stdlib_values_travel_as_plain_data() -> None:
    bridge = HostBridge(types.SimpleNamespace())
    import collections
    import datetime
    import time

    stamp = time.gmtime(0)  # a standard-library tuple subclass
    assert bridge.encode(stamp) == {"t": "tuple", "v": list(stamp)}
    assert bridge.encode(collections.OrderedDict(a=1)) == {"t": "dict", "v": [["a", 1]]}
    assert bridge.encode(datetime.date(2024, 1, 2)) == "2024-01-02"
    with pytest.raises(Exception, match="not accessible"):
        bridge.encode(logging.getLogger("x"))


def test_wire_format_limits_and_round_trip() -> None:
    value = {"a": (1, 2.5, None, True), "b": [b"\x00", {1, 2}, frozenset({3})], 3: 1j}
    encoded = protocol.encode(value, lambda _v: 0)
    assert protocol.decode(encoded, lambda _h: None) == value
    nested: list[object] = []
    for _ in range(100):
        nested = [nested]
    with pytest.raises(protocol.DataLimit):
        protocol.encode(nested, lambda _v: 0)
    with pytest.raises(protocol.DataLimit):
        protocol.encode(list(range(200_000)), lambda _v: 0)
    with pytest.raises(ValueError, match="malformed"):
        protocol.decode({"t": "code", "v": []}, lambda _h: None)
    with pytest.raises(ValueError, match="malformed"):
        protocol.load_body(b"[1, 2]")


@pytest.mark.parametrize(
    "source",
    ["x.__class__", "_x = 1", "async def f():\n    pass", "try:\n    pass\nexcept* E:\n    pass",
     "class A(metaclass=M):\n    pass", "class A(B, flag=1):\n    pass", "eval('1')",
     "match x:\n    case 1:\n        pass", "a.__init__ = 1", "from m import _hidden"],
)
def test_ast_policy_rejects(source: str) -> None:
    with pytest.raises(CompileFailed) as info:
        compile_script(source)
    assert info.value.reason.startswith("Script rejected") or "SyntaxError" in info.value.reason


def test_augmented_assignment_of_names_stays_native() -> None:
    code = compile_script("total = 0\nfor i in range(3):\n    total += i\n")
    assert "_inplacevar_" not in code.co_names and "_getiter_" not in code.co_names


def test_guards_type_policy() -> None:
    guards = script_builtins(grant(["math", "os", "json"]), OutputCapture(100))
    getattr_, import_, write = guards["getattr"], guards["__import__"], guards["_write_"]
    assert getattr_("a,b", "split")(",") == ["a", "b"]
    for obj, name in [("", "format"), ("", "format_map"), ((), "__class__"), (len, "__self__"),
                      (Exception("x"), "with_traceback"), (lambda: 0, "__globals__")]:
        with pytest.raises(AttributeError):
            getattr_(obj, name)
    assert getattr_(Exception("m"), "args") == ("m",)
    math = import_("math")
    assert isinstance(math, ModuleFacade) and getattr_(math, "sqrt")(9) == 3.0
    with pytest.raises(ImportError, match="Import of 'os' is not allowed"):
        import_("os")
    with pytest.raises(TypeError):
        write(math)
    assert not importable("os.path") and not importable("_json") and importable("json")
