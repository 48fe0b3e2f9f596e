"""The worker side of the bridge: every request's cost is bounded, however the data is shaped.

These drive :class:`HostBridge` directly with the frames a hostile child could send
(today's main spent seconds of GIL-held C calls on each of them). Timing bounds here
are generous (a loaded machine); the measured figures are in
``benchmarks/bench_script_starvation.py``.
"""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask
from sandbox.helpers import make_app

from common_api.sandbox import policy, protocol
from common_api.sandbox.proxy import HostBridge

M = 2 ** 61 - 1  # ints that differ by multiples of M hash alike


def colliding(n: int) -> dict[str, object]:
    return {"t": "set", "v": [1 + i * M for i in range(n)]}


def _walk(bridge: HostBridge, *names: str) -> int:
    handle = 0
    for name in names:
        reply = bridge.handle({"op": "getattr", "h": handle, "name": name})
        handle = int(reply["ok"]["v"])  # type: ignore[index]
    return handle


@pytest.fixture()
def bridge() -> HostBridge:
    return HostBridge(make_app())


def _timed(bridge: HostBridge, message: dict[str, object]) -> tuple[dict[str, object], float]:
    frame = json.dumps(message).encode()
    started = time.perf_counter()
    reply = bridge.handle(protocol.load_body(frame))
    return reply, time.perf_counter() - started


def test_a_colliding_set_beyond_the_bound_is_refused_before_it_is_built(
        bridge: HostBridge) -> None:
    echo = _walk(bridge, "state", "engine", "echo")
    reply, elapsed = _timed(bridge, {"op": "call", "h": echo,
                                     "args": [colliding(policy.MAX_HASHED_ITEMS + 1)],
                                     "kwargs": []})
    assert reply["err"][0] == "ValueError" and "1024 keys" in reply["err"][1]  # type: ignore[index]
    assert elapsed < 1.0


def test_many_small_colliding_sets_in_one_request_hit_the_hash_budget(
        bridge: HostBridge) -> None:
    echo = _walk(bridge, "state", "engine", "echo")
    copies = [colliding(1000)] * 8  # 8,000 colliding keys, each set within the bound
    message = {"op": "call", "h": echo, "args": copies, "kwargs": []}
    assert len(json.dumps(message)) < policy.MAX_MESSAGE_BYTES
    reply, elapsed = _timed(bridge, message)
    assert "too many set or dict keys" in reply["err"][1]  # type: ignore[index]
    assert elapsed < 1.0


def test_string_keys_hash_randomly_and_are_not_bounded(bridge: HostBridge) -> None:
    echo = _walk(bridge, "state", "engine", "echo")
    keys = {"t": "set", "v": [f"k{i}" for i in range(5000)]}
    reply, _ = _timed(bridge, {"op": "call", "h": echo, "args": [keys], "kwargs": []})
    assert "ok" in reply


def test_a_membership_test_against_app_is_refused_before_decoding(bridge: HostBridge) -> None:
    poison = {"t": "dict", "v": [[{"t": "h", "v": 10 ** 6}, 1]]}  # a handle that does not exist
    reply = bridge.handle({"op": "contains", "h": 0, "item": poison})
    assert reply == {"err": ["TypeError", "app does not support 'in'"]}  # not "invalid handle"
    reply = bridge.handle({"op": "contains", "h": 0, "item": colliding(5000)})
    assert reply == {"err": ["TypeError", "app does not support 'in'"]}


@pytest.mark.parametrize(("path", "method"), [
    (("state", "history"), "extend"), (("state", "history"), "sort"),
    (("state", "history"), "append"), (("state", "registry"), "update"),
    (("state", "registry"), "setdefault"), (("state", "engine", "tags"), "add"),
])
def test_builtin_methods_of_host_containers_are_not_host_api(
        bridge: HostBridge, path: tuple[str, ...], method: str) -> None:
    handle = _walk(bridge, *path)
    reply = bridge.handle({"op": "getattr", "h": handle, "name": method})
    assert reply["err"][0] == "AttributeError" and "not host code" in reply["err"][1]  # type: ignore[index]


def test_host_containers_keep_their_bounded_operations_and_own_methods(
        bridge: HostBridge) -> None:
    registry = _walk(bridge, "state", "registry")
    assert bridge.handle({"op": "len", "h": registry}) == {"ok": 2}
    assert bridge.handle({"op": "getitem", "h": registry, "key": "llama"}) == {"ok": 1}
    assert bridge.handle({"op": "contains", "h": registry, "item": "mistral"}) == {"ok": True}
    models = _walk(bridge, "state", "registry", "models")
    assert bridge.handle({"op": "call", "h": models, "args": [], "kwargs": []}) == {
        "ok": {"t": "list", "v": ["llama", "mistral"]}}


def test_an_aliased_reply_is_refused_by_its_estimated_size_before_serializing(
        bridge: HostBridge) -> None:
    engine = _walk(bridge, "state", "engine")
    note = _walk(bridge, "state", "engine", "note")
    window = _walk(bridge, "state", "engine", "window")
    bridge.handle({"op": "call", "h": note, "args": ["x" * 100_000], "kwargs": []})
    started = time.perf_counter()
    reply = bridge.handle({"op": "call", "h": window, "args": [99_000], "kwargs": []})
    assert reply["err"][1] == f"value is larger than {policy.MAX_REPLY_BYTES} bytes"  # type: ignore[index]
    assert time.perf_counter() - started < 1.0
    assert engine


def test_the_deadline_is_enforced_inside_the_bridge(bridge: HostBridge) -> None:
    with pytest.raises(protocol.Expired):
        bridge.handle({"op": "getattr", "h": 0, "name": "state"}, deadline=time.monotonic() - 1)
    budget = protocol.Budget(None, time.monotonic() - 1)
    with pytest.raises(protocol.Expired):
        protocol.decode({"t": "list", "v": list(range(10_000))}, lambda h: None, budget=budget)


def test_long_integers_are_refused_even_if_the_host_lifted_the_digit_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "get_int_max_str_digits", lambda: 0)
    with pytest.raises(protocol.DataLimit, match="too long"):
        protocol.load_body(b'{"op": "call", "args": [' + b"9" * 5000 + b"]}")


def test_a_request_frame_larger_than_the_bound_is_refused_unread(app: Flask) -> None:
    from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

    runner = ScriptRunner(ScriptSettings(timeout=5))
    try:
        source = f"app.state.engine.echo('x' * {policy.MAX_MESSAGE_BYTES + 10})"
        with pytest.raises(ScriptError, match="message size limit"):
            runner.run(source, app)
    finally:
        runner.close()


def test_one_budget_covers_all_the_arguments_of_a_request(bridge: HostBridge) -> None:
    echo = _walk(bridge, "state", "engine", "echo")
    half = {"t": "list", "v": list(range(30_000))}
    reply = bridge.handle({"op": "call", "h": echo, "args": [half], "kwargs": [["more", half]]})
    assert reply["err"][1] == f"value has more than {policy.MAX_REQUEST_ITEMS} items"  # type: ignore[index]
