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
    assert "too many set or dict keys with one hash" in reply["err"][1]  # type: ignore[index]
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


# --- what accumulates in the host across requests and scripts (red team, 2026-12-07) -----

_MASK = 2 ** 64 - 1
_P1, _P2, _P5 = 11400714785074694791, 14029467366897019727, 2870177450012600261


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _lane_int(lane: int) -> int | None:
    """An int whose hash is the 64-bit ``lane``, if a small one has it."""
    if lane < M:
        return lane
    signed = lane - 2 ** 64
    return signed if -M < signed < -1 else None


def colliding_pairs(count: int) -> list[tuple[int, int]]:
    """Distinct 2-tuples of small ints that all hash alike, by inverting CPython's tuple
    hash: small ints cannot collide, tuples of them can."""
    target = hash((0, 0)) & _MASK
    inner = (target - (2 ^ (_P5 ^ 3527539))) * pow(_P1, -1, 2 ** 64) & _MASK
    before = ((inner >> 31) | (inner << 33)) & _MASK  # rotate right by 31
    pairs: list[tuple[int, int]] = []
    a = 0
    while len(pairs) < count:
        a += 1
        first = _rotl((_P5 + a * _P2) & _MASK, 31) * _P1 & _MASK
        b = _lane_int((before - first) * pow(_P2, -1, 2 ** 64) & _MASK)
        if b is not None:
            pairs.append((a, b))
    assert len({hash(pair) for pair in pairs}) == 1
    return pairs


def _call(bridge: HostBridge, handle: int, argument: object) -> dict[str, object]:
    return bridge.handle({"op": "call", "h": handle, "args": [argument], "kwargs": []})


def test_colliding_ints_handed_to_the_host_across_requests_and_runs_are_bounded() -> None:
    """One by one, in requests of two runs, ints that differ by multiples of 2**61-1 are
    taken up to the bound; the next distinct one is refused, counting nothing, while the
    ones already taken, strings and small ints still pass."""
    from common_api.sandbox.collisions import MAX_SAME_HASH, CollisionGuard

    guard, app = CollisionGuard(), make_app()
    first, second = HostBridge(app, (), guard), HostBridge(app, (), guard)
    echo_one, echo_two = _walk(first, "state", "engine", "echo"), _walk(
        second, "state", "engine", "echo")
    for i in range(1, MAX_SAME_HASH + 1):  # 5 itself hashes alike but is a small int
        bridge, echo = (first, echo_one) if i % 2 else (second, echo_two)
        assert "ok" in _call(bridge, echo, 5 + i * M), i
    refused = _call(second, echo_two, 5 + (MAX_SAME_HASH + 1) * M)
    assert refused["err"][0] == "ValueError"  # type: ignore[index]
    assert "distinct values with one hash" in refused["err"][1]  # type: ignore[index]
    assert "err" in _call(first, echo_one, 5 + (MAX_SAME_HASH + 1) * M)  # still refused
    assert "ok" in _call(second, echo_two, 5 + 3 * M)  # one already taken
    assert "ok" in _call(second, echo_two, {"t": "list", "v": list(range(1000))})
    assert "ok" in _call(second, echo_two, "x" * 100)


def test_crafted_colliding_tuples_of_small_ints_are_bounded_too() -> None:
    from common_api.sandbox.collisions import MAX_SAME_HASH

    bridge = HostBridge(make_app())
    echo = _walk(bridge, "state", "engine", "echo")
    pairs = colliding_pairs(MAX_SAME_HASH + 1)
    batch = {"t": "list", "v": [{"t": "tuple", "v": list(pair)} for pair in pairs[:-1]]}
    assert "ok" in _call(bridge, echo, batch)
    refused = _call(bridge, echo, {"t": "tuple", "v": list(pairs[-1])})
    assert "distinct values with one hash" in refused["err"][1]  # type: ignore[index]


def test_a_refused_request_counts_none_of_its_values() -> None:
    from common_api.sandbox.collisions import MAX_SAME_HASH, CollisionGuard

    guard = CollisionGuard()
    with pytest.raises(protocol.DataLimit):
        guard.admit([7 + i * M for i in range(MAX_SAME_HASH + 1)])
    guard.admit([7 + i * M for i in range(MAX_SAME_HASH)])  # none was counted


def test_the_guard_s_table_stays_bounded_and_keeps_the_hashes_near_the_bound() -> None:
    from common_api.sandbox.collisions import CollisionGuard

    guard = CollisionGuard(max_same_hash=8, max_tracked=100)
    guard.admit([3 + i * M for i in range(1, 9)])  # one hash at the bound
    for start in range(0, 1000, 10):  # many single values push the table past its size
        guard.admit([M + 10 + start + i for i in range(10)])  # each of its own hash
    assert len(guard._seen) <= 100
    with pytest.raises(protocol.DataLimit):
        guard.admit([3 + 9 * M])  # the hash at the bound was not forgotten


def test_one_run_hands_the_host_at_most_the_script_item_budget() -> None:
    """Each request within its own bounds, a run may not hand the host more items in all:
    what the host keeps of one script is bounded (0.5 GB of floats before)."""
    from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

    runner, app = ScriptRunner(ScriptSettings(timeout=20)), make_app()
    per_call = 40_000
    calls = policy.MAX_SCRIPT_ITEMS // per_call + 2
    lookup = "app.state.lmcache_adapter.lmcache_engine.lookup"
    source = (f"big = [0.5] * {per_call}\n"
              f"for _ in range({calls}):\n"
              f"    {lookup}('model', big)\n")
    try:
        with pytest.raises(ScriptError, match="items handed to the host"):
            runner.run(source, app)
        assert runner.run(f"{lookup}('model', [0.5] * {per_call})\nresult = 1",
                          app).result == "1"
    finally:
        runner.close()


def test_a_set_of_large_colliding_tuples_is_charged_by_their_size() -> None:
    """1,000 tuples of 48 items that hash alike, within the key bound: each insertion
    compares whole tuples, so building the set held the GIL ~0.3 s; it is refused before
    it is built. A set of 1,000 distinct pairs costs next to nothing."""
    bridge = HostBridge(make_app())
    echo = _walk(bridge, "state", "engine", "echo")
    heavy = {"t": "set", "v": [{"t": "tuple", "v": [0] * 47 + [k * M]}
                              for k in range(1, 1001)]}
    message = {"op": "call", "h": echo, "args": [heavy], "kwargs": []}
    assert len(json.dumps(message)) < policy.MAX_MESSAGE_BYTES
    reply, elapsed = _timed(bridge, message)
    assert "keys with one hash" in reply["err"][1], reply  # type: ignore[index]
    assert elapsed < 0.2
    pairs = {"t": "set", "v": [{"t": "tuple", "v": [k, k + 1]} for k in range(1000)]}
    assert "ok" in _call(bridge, echo, pairs)


def test_strings_count_as_chosen_hashes_only_where_hashing_is_not_randomised() -> None:
    import os
    import subprocess
    import sys

    assert protocol.chosen_hash("abc") is (not sys.flags.hash_randomization)
    fixed = subprocess.run(
        [sys.executable, "-c", "from common_api.sandbox import protocol as p; "
         "print(p.chosen_hash('abc'), p.chosen_hash(b'abc'), p.chosen_hash(3))"],
        env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
        timeout=60, check=True)
    assert fixed.stdout.split() == ["True", "True", "False"]
