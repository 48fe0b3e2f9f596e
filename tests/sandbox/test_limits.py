"""Limits and isolation of the runner: concurrency, output caps, audit, process hygiene."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sandbox.helpers import ENV_CANARY, make_app

from common_api.sandbox import ScriptBusy, ScriptError, ScriptRunner, ScriptSettings

GATED = "result = app.state.gate.wait()"


@pytest.fixture()
def gated_app() -> Iterator[Flask]:
    app = make_app()
    yield app
    app.state.gate.release.set()  # type: ignore[attr-defined]


def _start(runner: ScriptRunner, app: Flask, results: list[object]) -> threading.Thread:
    def target() -> None:
        try:
            results.append(runner.run(GATED, app).result)
        except Exception as exc:  # recorded for the assertion
            results.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def _entered(app: Flask) -> None:
    assert app.state.gate.entered.acquire(timeout=10), "script never reached the gate"  # type: ignore[attr-defined]


@pytest.mark.parametrize("max_concurrent", [1, 2])
def test_flood_beyond_max_concurrent_is_busy(gated_app: Flask, max_concurrent: int) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=10, max_concurrent=max_concurrent))
    results: list[object] = []
    try:
        threads = [_start(runner, gated_app, results) for _ in range(max_concurrent)]
        for _ in threads:
            _entered(gated_app)
        with pytest.raises(ScriptBusy, match=f"at most {max_concurrent} at once"):
            runner.run("result = 1", gated_app)
        gated_app.state.gate.release.set()  # type: ignore[attr-defined]
        for thread in threads:
            thread.join(10)
        assert results == ["released"] * max_concurrent
        assert runner.run("result = 'free again'", gated_app).result == "free again"
    finally:
        runner.close()


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)


def test_script_process_is_isolated(gated_app: Flask) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=10, memory_limit_bytes=256 * 1024 * 1024))
    results: list[object] = []
    try:
        thread = _start(runner, gated_app, results)
        _entered(gated_app)
        server = runner._server
        assert server is not None
        with open(f"/proc/{server.proc.pid}/environ", "rb") as handle:
            environment = handle.read()
        assert ENV_CANARY.encode() not in environment  # the worker's secrets stay there
        pid = server.proc.pid
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            children = [int(p) for p in handle.read().split()]
        assert len(children) == 1
        child = children[0]
        with open(f"/proc/{child}/limits", encoding="ascii") as handle:
            limits = handle.read()
        assert "268435456" in limits.split("Max address space")[1].splitlines()[0]
        assert limits.split("Max file size")[1].split()[0] == "0"
        assert _proc_status(child)["NSpgid"].split()[-1] == str(child)  # own process group
        gated_app.state.gate.release.set()  # type: ignore[attr-defined]
        thread.join(10)
        assert results == ["released"]
    finally:
        runner.close()


def test_result_and_output_are_capped(app: Flask) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=5, max_result_bytes=1000))
    try:
        outcome = runner.run("for i in range(500):\n    print('line', i)\nresult = 'r' * 10", app)
        assert outcome.truncated
        assert outcome.result == "r" * 10
        assert len(outcome.output.encode()) <= 1000 + 100
        assert outcome.output.endswith("[truncated: the result and output exceed 1000 bytes]")
        big = runner.run("result = 'x' * 5000", app)
        assert big.truncated and big.result.startswith("x" * 1000)
        assert big.result.endswith("exceed 1000 bytes]")
    finally:
        runner.close()


def test_memory_limit_names_the_limit(app: Flask) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=5, memory_limit_bytes=128 * 1024 * 1024))
    try:
        with pytest.raises(ScriptError, match=r"^Script exceeded the memory limit$"):
            runner.run("data = bytearray(300 * 1024 * 1024)", app)
        assert runner.run("result = len(bytearray(10 * 1024 * 1024))", app).result == "10485760"
    finally:
        runner.close()


def test_every_script_is_logged_by_the_runner(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=5))
    caplog.set_level(logging.INFO, logger="common_api.sandbox.scripts")
    try:
        runner.run("result = 1", app, client="10.0.0.7")
        with pytest.raises(ScriptError):
            runner.run("import os", app, client="10.0.0.8")
    finally:
        runner.close()
    records = [r for r in caplog.records if r.name == "common_api.sandbox.scripts"]
    assert len(records) == 2
    ok, failed = records
    assert ok.script_outcome == "ok" and ok.script_client == "10.0.0.7"  # type: ignore[attr-defined]
    assert ok.script_size == 10 and len(ok.script_sha256) == 16  # type: ignore[attr-defined]
    assert ok.script_duration >= 0  # type: ignore[attr-defined]
    assert failed.getMessage().endswith('outcome="error: Import of \'os\' is not allowed"')
    assert 'client="10.0.0.8"' in failed.getMessage()


def test_close_is_idempotent_and_final(app: Flask) -> None:
    runner = ScriptRunner(ScriptSettings(timeout=5))
    assert runner.run("result = 1", app).result == "1"
    server = runner._server
    assert server is not None
    runner.close()
    runner.close()
    assert server.proc.poll() is not None  # the fork server is gone
    with pytest.raises(ScriptError, match="closed"):
        runner.run("result = 1", app)
