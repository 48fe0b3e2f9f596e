"""The gunicorn hooks (``common_api.gunicorn``), the preset built on them, and
``common-api serve`` (issue 11): real gunicorn, over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import LiveServer, launch_gunicorn, wait_ready, wait_until

APPS = Path(__file__).resolve().parent / "apps"
SERVER_START = 60.0


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, **extra}


def test_importing_the_hooks_and_the_preset_creates_and_clears_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "prometheus").mkdir(parents=True)
    (state / "prometheus" / "counter_1.db").write_bytes(b"kept")
    (state / "loglevels.json").write_text("{}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    code = "import common_api.gunicorn, common_api.gunicorn_conf"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={**os.environ, "COMMON_API_STATE_DIR": str(state),
                        "TMPDIR": str(scratch)})
    assert (state / "prometheus" / "counter_1.db").read_bytes() == b"kept"
    assert (state / "loglevels.json").exists()
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("key,value", [("COMMON_API_WORKERS", "abc"),
                                       ("COMMON_API_THREADS", "0"),
                                       ("COMMON_API_BIND", "localhost:http")])
def test_bad_server_setting_stops_the_preset_with_one_line_naming_the_key(
        key: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-c",
                           "python:common_api.gunicorn_conf", "plain_host:app"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **_env(), key: value})
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"common_api: {key} must be " + done.stderr.split(" must be ", 1)[1].strip()]
    assert key in done.stderr and "Traceback" not in done.stderr


@pytest.mark.server
@pytest.mark.parametrize("launcher", ["serve", "gunicorn"])
def test_bad_app_setting_is_one_line_without_tracebacks(
        launcher: str, tmp_path: Path, start_server: Callable[..., LiveServer]) -> None:
    env = _env(COMMON_API_SCRIPT_TIMEOUT="abc")
    if launcher == "serve":
        from support import launch_server
        server = launch_server(tmp_path, "--app", "plain_host:app", env=env)
    else:
        # one worker: with several, gunicorn's own master may trace back while it stops
        # (its HaltServer raised again when a second worker fails the same way)
        server = launch_gunicorn(tmp_path, "-w", "1", "plain_host:app", env=env)
    try:
        server.proc.wait(timeout=SERVER_START)
    finally:
        server.stop()
    log = server.log()
    assert server.proc.returncode != 0
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "COMMON_API_SCRIPT_TIMEOUT" in line]
    assert lines and set(lines) == {
        "common_api configuration error: COMMON_API_SCRIPT_TIMEOUT must be a number, got 'abc'"}


@pytest.mark.server
def test_serve_keeps_a_given_state_dir_and_sends_the_audit_log_to_its_error_log(
        tmp_path: Path, start_server: Callable[..., LiveServer]) -> None:
    state = tmp_path / "given-state"
    state.mkdir()
    (state / "loglevels.json").write_text('{"stale.logger": "DEBUG"}')
    server = start_server("--app", "plain_host:app",
                          env=_env(COMMON_API_STATE_DIR=str(state)), timeout=SERVER_START)
    assert not (state / "loglevels.json").exists() or "stale" not in (
        state / "loglevels.json").read_text()
    assert server.get("/loglevel", params={"logger_name": "host.x", "level": "DEBUG"}
                      ).status_code == 200
    assert list((state / "prometheus").glob("*.db"))
    assert json.loads((state / "loglevels.json").read_text())
    wait_until(lambda: '"event": "loglevel.set"' in server.log(), 15,
               message="the audit line in the server's log")
    server.stop()
    assert state.is_dir()


@pytest.mark.server
def test_plain_gunicorn_with_two_workers_warns_once_naming_the_fix(tmp_path: Path) -> None:
    server = launch_gunicorn(tmp_path, "-w", "2", "plain_host:app", env=_env())
    try:
        wait_ready(server, timeout=SERVER_START)
        pids: set[str] = set()

        def both_workers_answered() -> bool:
            pids.add(server.get("/metrics").headers["X-Worker-Pid"])
            return len(pids) == 2
        wait_until(both_workers_answered, 30, message="both workers to answer")
        warnings = [line for line in server.log().splitlines()
                    if "without common_api's state directory" in line]
        assert len(warnings) == 1, server.log()
        assert "gunicorn runs 2 workers" in warnings[0]
        assert "python:common_api.gunicorn_conf" in warnings[0]
        assert "common_api.gunicorn" in warnings[0]
    finally:
        server.stop()


HOST_CONFIG = '''
from common_api import gunicorn as common_api_hooks

common_api_hooks.prepare_state()
workers = 2
worker_class = "gthread"
threads = 2
calls = []


def post_worker_init(worker):
    common_api_hooks.post_worker_init(worker)
    print("host post_worker_init", flush=True)


def child_exit(server, worker):
    common_api_hooks.child_exit(server, worker)


def on_exit(server):
    common_api_hooks.on_exit(server)
'''


@pytest.mark.server
def test_a_host_config_composing_the_hooks_serves_one_component(tmp_path: Path) -> None:
    config = tmp_path / "host_gunicorn.conf.py"
    config.write_text(HOST_CONFIG)
    server = launch_gunicorn(tmp_path, "-c", str(config), "--preload", "multi_app:app",
                             env=_env(TMPDIR=str(tmp_path)))
    try:
        wait_ready(server, timeout=SERVER_START)

        def both_workers() -> bool:
            body = server.get("/periodic-threads-health").json()
            return body.get("workers") == 2
        wait_until(both_workers, 30, message="health to see both workers")
        for _ in range(20):
            assert server.get("/hit").status_code == 200
        assert server.get("/loglevel", params={"logger_name": "multi.app", "level": "DEBUG"}
                          ).status_code == 200
        for _ in range(4):
            assert "host_hits_total 20.0" in server.get("/metrics").text
        at_debug: set[int] = set()

        def every_worker_at_debug() -> bool:
            answer = server.get("/pid").json()
            if answer["level"] == "DEBUG":
                at_debug.add(answer["pid"])
            return len(at_debug) == 2
        # the other worker applies the level in the background within a second
        wait_until(every_worker_at_debug, 30, message="the level in both workers")
        log = server.log()
        assert log.count("host post_worker_init") == 2
        assert "without common_api's state directory" not in log
    finally:
        server.stop()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("common-api-state-")]


def _readme_recipe() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("```python\n# gunicorn.conf.py\n") + len("```python\n")
    return readme[start:readme.index("```", start)]


@pytest.mark.server
def test_the_readme_s_own_config_recipe_as_written_serves_one_component_and_misses_no_hook(
        tmp_path: Path) -> None:
    """Its one worker class on any supported gunicorn: older than 27, the class serves with
    gunicorn's own gthread handling and says so in one line."""
    import gunicorn

    config = tmp_path / "gunicorn.conf.py"
    config.write_text(_readme_recipe())
    server = launch_gunicorn(tmp_path, "-c", str(config), "-w", "2",  # 2 cores here
                             "multi_app:app", env=_env(TMPDIR=str(tmp_path)))
    try:
        wait_ready(server, timeout=SERVER_START)
        wait_until(lambda: server.get("/periodic-threads-health").json().get("workers") == 2,
                   30, message="health to see both workers")
        log = server.log()
        assert "hook does not call" not in log and "without common_api's state" not in log
        said = [line for line in log.splitlines()
                if "serves with gunicorn's own gthread connection handling" in line]
        if gunicorn.version_info < (27,):
            assert len(said) == 1 and "WARNING" in said[0], log
            assert f"gunicorn {gunicorn.__version__}: common_api.gunicorn_worker." \
                   "PlainErrorThreadWorker serves" in said[0]
        else:
            assert not said, said
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["+3", "1_000", "\uff13", "2.0", " -1 "])
def test_a_worker_count_is_plain_ascii_digits(value: str) -> None:
    from common_api.gunicorn import server_settings

    with pytest.raises(ValueError, match="COMMON_API_WORKERS must be a positive integer"):
        server_settings({"COMMON_API_WORKERS": value})
    assert server_settings({"COMMON_API_WORKERS": " 3 "}).workers == 3
