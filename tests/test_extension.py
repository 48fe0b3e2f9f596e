"""One extension object in the Flask manner (issue 18, point 4): ``CommonApi``."""

from __future__ import annotations

import io
import os
import signal
import threading

import pytest
from flask import Flask

from common_api import CommonApi, bp
from common_api.extension import get_state


def _children() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_the_object_is_the_app_s_extension_and_registers_the_blueprint() -> None:
    app = Flask("ext_object")
    api = CommonApi(app, url_prefix="/ops", script_timeout=3)
    assert app.extensions["common_api"] is api
    assert api.settings["COMMON_API_SCRIPT_TIMEOUT"] == 3.0
    assert app.test_client().get("/ops/periodic-threads-health").status_code == 200
    assert api.exporter is get_state(app).exporter  # the services, through the object


def test_settings_given_to_the_object_win_over_app_config_and_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMON_API_SCRIPT_TIMEOUT", "7")
    monkeypatch.setenv("COMMON_API_MAX_QUERY_LENGTH", "99")
    app = Flask("ext_precedence")
    app.config["COMMON_API_SCRIPT_TIMEOUT"] = 5
    api = CommonApi()
    api.init_app(app)  # the factory form
    assert api.settings["COMMON_API_SCRIPT_TIMEOUT"] == 5.0
    assert api.settings["COMMON_API_MAX_QUERY_LENGTH"] == 99
    other = Flask("ext_precedence_2")
    other.config["COMMON_API_SCRIPT_TIMEOUT"] = 5
    assert CommonApi(other, COMMON_API_SCRIPT_TIMEOUT=2).settings[
        "COMMON_API_SCRIPT_TIMEOUT"] == 2.0


def test_a_misspelled_setting_names_the_nearest_one() -> None:
    with pytest.raises(TypeError, match="did you mean 'script_timeout'"):
        CommonApi(script_timeoutt=3)


def test_registering_bp_still_makes_the_object() -> None:
    app = Flask("ext_bp")
    app.register_blueprint(bp)
    assert isinstance(app.extensions["common_api"], CommonApi)
    with pytest.raises(RuntimeError, match="already set up"):
        CommonApi(app)


def test_one_object_serves_one_app() -> None:
    api = CommonApi(Flask("ext_one"))
    with pytest.raises(RuntimeError, match="one app"):
        api.init_app(Flask("ext_two"))


def _handlers() -> dict[int, object]:
    return {number: signal.getsignal(number) for number in signal.valid_signals()
            if number not in (signal.SIGKILL, signal.SIGSTOP)}


def test_make_use_and_close_leaves_no_thread_or_process_behind() -> None:
    threads_before = set(threading.enumerate())
    children_before = _children()
    handlers_before = _handlers()
    app = Flask("ext_close")
    api = CommonApi(app, script_enabled=True)
    client = app.test_client()
    answer = client.post("/run_script", data={"script": (io.BytesIO(b"result = 6 * 7"), "s")},
                         content_type="multipart/form-data")
    assert answer.get_data(as_text=True) == "42"
    assert client.get("/loglevel?logger_name=ext.close&level=DEBUG&duration=60"
                      ).status_code == 200
    assert _children() - children_before  # the script's fork server
    api.close()
    api.close()  # idempotent
    assert set(threading.enumerate()) - threads_before == set()  # the recorder's too
    assert _children() - children_before == set()
    assert _handlers() == handlers_before
