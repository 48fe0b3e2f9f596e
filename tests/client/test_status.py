"""``common-api status`` against live servers: healthy, unhealthy, stopped, token-protected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from client.fleet import Fleet
from client.helpers import row_of, run_cli

pytestmark = pytest.mark.server


def test_healthy_component_row_and_exit_zero(fleet: Fleet,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", fleet.healthy.url)
    assert result.code == 0
    assert row_of(result.out, fleet.healthy.url) == [fleet.healthy.url, "healthy", "2", "0.1.0"]


def test_table_columns_are_aligned_under_headers_with_summary(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", fleet.healthy.url, fleet.stopped)
    header, *rows, summary = result.out.splitlines()
    starts = [header.index(name) for name in ("HEALTH", "WORKERS", "VERSION")]
    for row in rows:
        assert all(row[start - 1] == " " and row[start] != " " for start in starts), row
    assert summary == "2 components: 1 healthy, 1 unreachable"


def test_unhealthy_component_names_its_threads_with_pids(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", fleet.unhealthy.url)
    assert result.code == 1
    _, health, workers, version, threads = row_of(result.out, fleet.unhealthy.url)
    assert (health, workers, version) == ("UNHEALTHY", "2", "0.1.0")
    labels = threads.split(", ")
    assert len(labels) == 2 and all(label.startswith("doomed@") for label in labels)
    assert all(label.split("@")[1].split(": ")[0].isdigit() for label in labels)
    assert all(label.split(": ", 1)[1] in {"not running", "no run within 3 intervals"}
               for label in labels)


def test_stopped_component_is_unreachable_with_reason(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", fleet.stopped)
    assert result.code == 1
    assert row_of(result.out, fleet.stopped) == [fleet.stopped, "UNREACHABLE", "-", "-",
                                                 "connection refused"]


def test_mixed_fleet_rows_in_given_order_and_exit_one(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    urls = [fleet.stopped, fleet.healthy.url, fleet.unhealthy.url]
    result = run_cli(capsys, "status", *urls)
    assert result.code == 1
    assert [line.split()[0] for line in result.out.splitlines()[1:4]] == urls


def test_json_is_an_array_of_row_objects(fleet: Fleet,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", "--json", fleet.healthy.url, fleet.unhealthy.url,
                     fleet.stopped)
    rows = json.loads(result.out)
    assert [(r["url"], r["health"]) for r in rows] == [
        (fleet.healthy.url, "healthy"), (fleet.unhealthy.url, "unhealthy"),
        (fleet.stopped, "unreachable")]
    healthy, unhealthy, stopped = rows
    assert (healthy["workers"], healthy["version"], healthy["http_status"]) == (2, "0.1.0", 200)
    assert unhealthy["http_status"] == 503 and unhealthy["unhealthy_count"] == 2
    assert {t["name"] for t in unhealthy["unhealthy_threads"]} == {"doomed"}
    assert stopped["reason"] == "connection refused" and stopped["workers"] is None
    assert result.code == 1


def test_trailing_slash_and_missing_scheme_are_accepted(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    bare = fleet.healthy.url.removeprefix("http://")
    result = run_cli(capsys, "status", "--json", fleet.healthy.url + "/", bare)
    rows = json.loads(result.out)
    assert [row["url"] for row in rows] == [fleet.healthy.url]  # one component, asked once
    assert rows[0]["health"] == "healthy"


def test_url_file_skips_blank_lines_and_comments(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url_file = tmp_path / "fleet.txt"
    url_file.write_text(f"# the fleet\n\n{fleet.healthy.url}  # demo\n   \n{fleet.stopped}\n")
    result = run_cli(capsys, "status", "--json", "--file", str(url_file))
    assert [row["url"] for row in json.loads(result.out)] == [fleet.healthy.url, fleet.stopped]


def test_no_progress_line_when_stderr_is_not_a_terminal(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "status", fleet.healthy.url, fleet.stopped)
    assert result.err == ""


def test_subprocess_json_on_stdout_only_and_exit_status(fleet: Fleet) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "common_api.cli", "status", "--json", fleet.healthy.url,
         fleet.stopped], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert [row["health"] for row in json.loads(done.stdout)] == ["healthy", "unreachable"]
    assert done.stderr == ""


def test_token_server_without_token_is_unreachable_401(
        fleet: Fleet, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMMON_API_TOKEN", raising=False)
    result = run_cli(capsys, "status", fleet.protected.url)
    assert result.code == 1
    _, health, *_, reason = row_of(result.out, fleet.protected.url)
    assert health == "UNREACHABLE" and reason.startswith("unauthorised: HTTP 401: ")
    assert "COMMON_API_TOKEN" in reason


def test_token_from_environment(fleet: Fleet, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_TOKEN", fleet.token)
    result = run_cli(capsys, "status", fleet.protected.url)
    assert result.code == 0
    assert row_of(result.out, fleet.protected.url)[1:3] == ["healthy", "1"]
    assert fleet.token not in result.out + result.err


def test_token_from_file_wins_and_is_stripped(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_TOKEN", "not-the-token")
    token_file = tmp_path / "token"
    token_file.write_text(f"  {fleet.token}\n")
    result = run_cli(capsys, "status", "--json", "--token-file", str(token_file),
                     fleet.protected.url)
    assert json.loads(result.out)[0]["health"] == "healthy"
    assert fleet.token not in result.out + result.err


def test_wrong_token_is_unreachable_403(fleet: Fleet, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_TOKEN", "wrong-token")
    result = run_cli(capsys, "status", "--json", fleet.protected.url)
    (row,) = json.loads(result.out)
    assert (row["health"], row["http_status"]) == ("unreachable", 403)
    assert "wrong-token" not in result.out + result.err
