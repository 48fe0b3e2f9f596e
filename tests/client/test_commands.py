"""``threads``, ``loglevel``, ``reset-metrics`` and ``run`` against live servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client.fleet import Fleet
from client.helpers import run_cli
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.server

SEED_SCRIPT = "result = app.state.lmcache_adapter.lmcache_engine.metadata.kv_shape\n"


def test_threads_by_name_prints_the_text_dump(fleet: Fleet,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "threads", fleet.healthy.url, "--name", "HEARTBEAT")
    assert result.code == 0
    assert result.out.startswith("Thread: <Thread(heartbeat")
    assert result.out.endswith("=== Thread Summary ===\nTotal threads: 1\n")


def test_threads_json_is_the_servers_json(fleet: Fleet,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "threads", fleet.healthy.url, "--name", "heartbeat", "--json")
    dump = json.loads(result.out)
    assert [thread["name"] for thread in dump["threads"]] == ["heartbeat"]


def test_threads_all_workers_prints_the_per_worker_dump(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "threads", fleet.healthy.url, "--all-workers", "--name", "heart")
    assert result.code == 0
    assert result.out.startswith("=== Worker ") and " (answering) ===\n" in result.out


def test_stopped_component_is_one_error_line_and_exit_one(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "threads", fleet.stopped)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"common-api threads: {fleet.stopped}: connection refused\n"


def test_loglevel_set_then_get_round_trip(fleet: Fleet,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    done = run_cli(capsys, "loglevel", fleet.healthy.url, "demo.stats", "warning")
    assert (done.code, done.out) == (
        0, "Set demo.stats level to WARNING (including all handlers)\n")
    got = run_cli(capsys, "loglevel", fleet.healthy.url, "demo.stats")
    assert (got.code, got.out) == (0, "demo.stats: WARNING\n")


def test_loglevel_lists_every_logger(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "loglevel", fleet.healthy.url)
    assert result.out.startswith("=== Loggers and Levels ===\nroot: ")
    assert "\ndemo.heartbeat: " in result.out


def test_loglevel_for_duration_schedules_the_revert(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    done = run_cli(capsys, "loglevel", fleet.healthy.url, "demo.cache", "DEBUG", "--for", "5m")
    assert done.code == 0, done.err
    assert done.out.startswith("Set demo.cache level to DEBUG (including all handlers) for ")
    got = run_cli(capsys, "loglevel", fleet.healthy.url, "demo.cache", "--json")
    revert = json.loads(got.out)["revert"]
    assert revert["level"] == "NOTSET" and 290 < revert["in_seconds"] <= 300


def test_loglevel_rejected_by_server_exits_one_with_its_message(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "loglevel", fleet.healthy.url, "demo.stats", "LOUD")
    assert result.code == 1 and result.out == ""
    assert result.err == (f"common-api loglevel: {fleet.healthy.url}: HTTP 400: "
                          "Invalid log level: LOUD\n")


def _work_items(fleet: Fleet) -> float:
    text = fleet.healthy.get("/metrics").text
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "demo_work_items_total")


def test_reset_metrics_resets_the_counters(fleet: Fleet,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        fleet.healthy.get("/work")
    assert _work_items(fleet) >= 3
    result = run_cli(capsys, "reset-metrics", fleet.healthy.url)
    assert result.code == 0
    assert result.out.splitlines()[1].split() == [fleet.healthy.url, "ok"]
    assert _work_items(fleet) == 0


def test_reset_metrics_fails_if_any_component_fails(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "reset-metrics", "--json", fleet.healthy.url, fleet.stopped)
    assert result.code == 1
    assert [(row["url"], row["ok"]) for row in json.loads(result.out)] == [
        (fleet.healthy.url, True), (fleet.stopped, False)]


def test_run_seed_script_prints_the_result(fleet: Fleet, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "scratch.py"
    script.write_text(SEED_SCRIPT)
    result = run_cli(capsys, "run", fleet.healthy.url, str(script))
    assert (result.code, result.out) == (0, "(27, 1, 64, 1, 576)\n")


def test_run_failing_script_exits_one_with_the_error(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import os\n")
    result = run_cli(capsys, "run", fleet.healthy.url, str(script))
    assert result.code == 1 and result.out == ""
    assert result.err == (f"common-api run: {fleet.healthy.url}: HTTP 500: Error executing "
                          "script: Import of 'os' is not allowed\n")


def test_run_on_a_component_without_scripts_says_it_is_disabled(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The unhealthy app does not set COMMON_API_SCRIPT_ENABLED: its /run_script is off."""
    script = tmp_path / "scratch.py"
    script.write_text("result = 6 * 7\n")
    result = run_cli(capsys, "run", fleet.unhealthy.url, str(script))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"common-api run: {fleet.unhealthy.url}: /run_script is disabled on "
                          "this component (its operator turns it on with "
                          "COMMON_API_SCRIPT_ENABLED=true)\n")


def test_run_with_token_from_environment(fleet: Fleet, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "scratch.py"
    script.write_text("result = 6 * 7\n")
    monkeypatch.setenv("COMMON_API_TOKEN", fleet.token)
    result = run_cli(capsys, "run", fleet.protected.url, str(script))
    assert (result.code, result.out) == (0, "42\n")
