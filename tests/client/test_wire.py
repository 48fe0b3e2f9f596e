"""What the client sends and how it reads odd answers, against a recording stub server;
and the command-line values (durations, usage errors, progress) on their own."""

from __future__ import annotations

import argparse
import email.message
import email.parser
import io
import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest
from client.helpers import Result, run_cli
from client.stub import Answer, Seen, StubServer

from common_api.cli import build_parser
from common_api.client import render
from common_api.client.commands import run_command
from common_api.client.http import UsageError
from common_api.client.options import parse_duration

HEALTHY = Answer(200, b'{"healthy": true, "unhealthy_count": 0, "unhealthy_threads": [], '
                 b'"workers": 1}', {"Content-Type": "application/json"})


def test_threads_options_become_query_parameters(stub: StubServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "threads", stub.url, "--name", "api", "--all-workers", "--group", "--json")
    (seen,) = stub.seen
    assert (seen.method, seen.path) == ("GET", "/threads")
    assert seen.query == {"name": ["api"], "scope": ["all"], "group": ["true"],
                          "format": ["json"]}


def test_prefix_path_and_trailing_slash_are_kept_and_dropped(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = lambda _: HEALTHY
    result = run_cli(capsys, "status", stub.url + "/ops/")
    assert [seen.path for seen in stub.seen] == ["/ops/periodic-threads-health"]
    assert result.out.splitlines()[1].split()[:2] == [stub.url + "/ops", "healthy"]


def test_token_is_sent_as_bearer_header(stub: StubServer, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_TOKEN", "tok-123")
    run_cli(capsys, "reset-metrics", stub.url)
    (seen,) = stub.seen
    assert (seen.method, seen.path) == ("POST", "/metrics/reset")
    assert seen.headers["authorization"] == "Bearer tok-123"


def test_no_authorization_header_without_a_token(stub: StubServer,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMMON_API_TOKEN", raising=False)
    run_cli(capsys, "threads", stub.url)
    assert "authorization" not in stub.seen[0].headers


def sent(seen: Seen) -> dict[str, list[str]]:
    """The parameters of a request: its query and, for a form post, its form."""
    fields = dict(seen.query)
    if seen.headers.get("content-type") == "application/x-www-form-urlencoded":
        fields.update(urllib.parse.parse_qs(seen.body.decode("ascii")))
    return fields


def _revert_answer(seen: Seen) -> Answer:
    body = {"logger_name": sent(seen)["logger_name"][0], "level": "DEBUG",
            "handlers_updated": True,
            "revert": {"level": "INFO", "at": "2030-01-01T00:00:00", "in_seconds": 90.0}}
    return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def test_loglevel_for_sends_duration_in_seconds(stub: StubServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = _revert_answer
    result = run_cli(capsys, "loglevel", stub.url, "app.db", "DEBUG", "--for", "1.5m")
    (seen,) = stub.seen
    assert (seen.method, seen.path, seen.query) == ("POST", "/loglevel", {"format": ["json"]})
    assert urllib.parse.parse_qs(seen.body.decode()) == {
        "logger_name": ["app.db"], "level": ["DEBUG"], "duration": ["90"]}
    assert result.code == 0
    assert re.fullmatch(r"Set app\.db level to DEBUG \(including all handlers\) for 90 seconds, "
                        r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d, then INFO\n",
                        result.out), result.out


def test_loglevel_for_names_the_workers_that_did_not_acknowledge(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    def answer(seen: Seen) -> Answer:
        body = {**json.loads(_revert_answer(seen).body), "unacknowledged_workers": [4242],
                "unacknowledged_reasons": {"4242": "stopped by SIGSTOP or a debugger"}}
        return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    stub.answer = answer
    result = run_cli(capsys, "loglevel", stub.url, "app.db", "DEBUG", "--for", "90")
    first, note = result.out.splitlines()
    assert re.fullmatch(r"Set app\.db level to DEBUG \(including all handlers\) for 90 seconds, "
                        r"until \S+[+-]\d\d:\d\d, then INFO", first), first
    assert note.startswith("Not yet applied by worker(s) 4242 (stopped by SIGSTOP or a "
                           "debugger);"), note


def test_loglevel_for_says_when_the_level_was_not_saved_for_later_workers(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    def answer(seen: Seen) -> Answer:
        body = {**json.loads(_revert_answer(seen).body),
                "not_saved_for_later_workers": "No space left on device"}
        return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    stub.answer = answer
    result = run_cli(capsys, "loglevel", stub.url, "app.db", "DEBUG", "--for", "90")
    first, note = result.out.splitlines()
    assert first.startswith("Set app.db level to DEBUG (including all handlers) for 90")
    assert note == "Not saved for workers started later: No space left on device"


def test_a_level_set_is_a_form_post_and_falls_back_to_the_seed_s_get_on_405(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = lambda seen: (Answer(405, b"Method Not Allowed") if seen.method == "POST"
                                else Answer(200, b"Set app.db level to DEBUG"))
    result = run_cli(capsys, "loglevel", stub.url, "app.db", "DEBUG")
    assert result.code == 0 and result.out == "Set app.db level to DEBUG\n"
    post, get = stub.seen
    assert (post.method, post.headers["content-type"]) == (
        "POST", "application/x-www-form-urlencoded")
    assert urllib.parse.parse_qs(post.body.decode()) == {"logger_name": ["app.db"],
                                                         "level": ["DEBUG"]}
    assert (get.method, get.query) == ("GET", {"logger_name": ["app.db"], "level": ["DEBUG"]})


def test_loglevel_for_fails_when_the_server_schedules_no_revert(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = lambda _: Answer(200, b'{"logger_name": "app.db", "level": "DEBUG"}',
                                   {"Content-Type": "application/json"})
    result = run_cli(capsys, "loglevel", stub.url, "app.db", "DEBUG", "--for", "60")
    assert result.code == 1
    assert "scheduled no revert" in result.err


def test_run_uploads_the_script_as_multipart_part_script(
        stub: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / 'we"ird.py'
    script.write_bytes(b"result = 1\r\n# \xc3\xa9\n")
    stub.answer = lambda _: Answer(200, b"1")
    result = run_cli(capsys, "run", stub.url, str(script))
    (seen,) = stub.seen
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {seen.headers['content-type']}\r\n\r\n".encode() + seen.body)
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 1
    part = parts[0]
    assert isinstance(part, email.message.Message)
    assert part.get_param("name", header="content-disposition") == "script"
    assert part.get_param("filename", header="content-disposition") == "we%22ird.py"
    assert part.get_payload(decode=True) == script.read_bytes()
    assert (result.code, result.out) == (0, "1\n")


def test_redirect_is_not_followed_so_the_token_stays_home(
        stub: StubServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = StubServer()
    try:
        stub.answer = lambda _: Answer(302, b"", {"Location": elsewhere.url + "/steal"})
        monkeypatch.setenv("COMMON_API_TOKEN", "tok-123")
        result = run_cli(capsys, "status", "--json", stub.url)
        assert elsewhere.seen == []
    finally:
        elsewhere.close()
    (row,) = json.loads(result.out)
    assert (row["health"], row["http_status"]) == ("unreachable", 302)
    assert "not followed" in row["reason"]


def test_health_path_answered_by_something_else_is_unreachable(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = lambda _: Answer(200, b"<html>login</html>", {"Content-Type": "text/html"})
    result = run_cli(capsys, "status", "--json", stub.url)
    (row,) = json.loads(result.out)
    assert (row["health"], row["reason"]) == ("unreachable",
                                              "HTTP 200: not a common_api health answer")


def test_components_time_out_each_on_its_own_concurrently(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    def held(_: Seen) -> Answer:
        stub.release.wait(10)
        return HEALTHY

    stub.answer = held
    urls = [f"{stub.url}/c{i}" for i in range(4)]
    started = time.monotonic()
    result = run_cli(capsys, "status", "--json", "--timeout", "0.5", *urls)
    elapsed = time.monotonic() - started
    stub.release.set()
    assert {row["reason"] for row in json.loads(result.out)} == {"timed out after 0.5s"}
    assert result.code == 1
    assert elapsed < 1.8  # 4 x 0.5 s one after another would take 2 s


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_goes_to_a_terminal_stderr_only(stub: StubServer) -> None:
    stub.answer = lambda _: HEALTHY
    out, err = io.StringIO(), _Terminal()
    args = build_parser().parse_args(["status", stub.url + "/a", stub.url + "/b"])
    assert run_command(args, out, err) == 0
    assert "asked 2/2..." in err.getvalue()
    assert err.getvalue().endswith("\r")  # erased: the next line starts clean
    assert "asked" not in out.getvalue()


def test_progress_is_silent_for_one_component() -> None:
    stream = _Terminal()
    progress = render.Progress(stream, 1)
    progress.update(1)
    progress.finish()
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("text", "seconds"), [
    ("300", 300.0), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1.5m", 90.0),
    (" 10S ", 10.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "5x", "m", "5 minutes", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize("argv", [
    [],
    ["status"],
    ["threads"],
    ["status", "ftp://host/"],
    ["status", "http://host:port/"],
    ["status", "--timeout", "0", "http://127.0.0.1:9"],
    ["status", "--token-file", "/nonexistent/token", "http://127.0.0.1:9"],
    ["status", "--file", "/nonexistent/urls", "http://127.0.0.1:9"],
    ["loglevel", "http://127.0.0.1:9", "app", "DEBUG", "--for", "5x"],
    ["loglevel", "http://127.0.0.1:9", "app", "--for", "5m"],
    ["run", "http://127.0.0.1:9", "/nonexistent/script.py"],
    ["run", "http://127.0.0.1:9"],
], ids=lambda argv: " ".join(argv) or "nothing")
def test_usage_errors_are_one_line_and_exit_two(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    result: Result = run_cli(capsys, *argv)
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1 and "error: " in result.err
    assert "Traceback" not in result.err


def test_parser_keeps_serve() -> None:
    args = build_parser().parse_args(["serve", "--workers", "3"])
    assert isinstance(args, argparse.Namespace) and (args.command, args.workers) == ("serve", 3)


def test_token_file_of_two_lines_is_a_usage_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-secret\nsecond-secret\n")
    result = run_cli(capsys, "status", "--token-file", str(token_file), "http://127.0.0.1:9")
    assert result.code == 2 and "first-secret" not in result.err


def test_environment_token_with_control_characters_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_TOKEN", "abc\x01def")
    result = run_cli(capsys, "status", "http://127.0.0.1:9")
    assert (result.code, result.out) == (2, "")
    assert "COMMON_API_TOKEN" in result.err and "abc" not in result.err


def _unhealthy(_: Seen) -> Answer:
    body = {"healthy": False, "unhealthy_count": 2, "workers": 2, "unhealthy_threads": [
        {"name": "heartbeat", "level": "critical", "pid": 41, "reason": "not running"},
        {"name": "watchdog", "level": "high", "pid": 42,
         "reason": "no run within 3 intervals"}]}
    return Answer(503, json.dumps(body).encode(), {"Content-Type": "application/json"})


def test_status_shows_each_unhealthy_threads_reason(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = _unhealthy
    result = run_cli(capsys, "status", stub.url)
    assert result.code == 1
    assert result.out.splitlines()[1].endswith(
        "heartbeat@41: not running, watchdog@42: no run within 3 intervals")


@pytest.mark.parametrize("code", [401, 403])
def test_refused_credentials_are_reported_as_unauthorised(
        code: int, stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    stub.answer = lambda _: Answer(code, b"Unauthorized: a bearer token is required")
    status = json.loads(run_cli(capsys, "status", "--json", stub.url).out)[0]
    assert status["reason"].startswith(f"unauthorised: HTTP {code}: ")
    threads = run_cli(capsys, "threads", stub.url)
    assert threads.code == 1
    assert threads.err.startswith(f"common-api threads: {stub.url}: unauthorised: HTTP {code}")


def test_an_html_404_is_not_a_common_api_endpoint(
        stub: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    page = b"<!doctype html><title>404 Not Found</title><h1>Not Found</h1>"
    stub.answer = lambda _: Answer(404, page, {"Content-Type": "text/html; charset=utf-8"})
    status = json.loads(run_cli(capsys, "status", "--json", stub.url).out)[0]
    assert status["reason"].startswith("not a common_api endpoint")
    for command in (["loglevel", stub.url], ["reset-metrics", stub.url]):
        result = run_cli(capsys, *command)
        assert result.code == 1
        assert "not a common_api endpoint" in result.out + result.err
