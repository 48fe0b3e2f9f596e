"""Other libraries' private code (common_api.compat, issue 19).

The first test pins every private shape common_api relies on in the running versions: tox
runs it in each env of its matrix (the newest, the lowest declared, LMCache's pins). The
others take a shape away from the real library and watch the feature built on it go off,
once, in the log and in health, instead of falling back silently.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import gunicorn
import gunicorn.util
import pytest
from flask import Flask
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict

from common_api import bp

COMPAT = "common_api.compat"


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        return None


def test_every_private_shape_is_there_in_this_version() -> None:
    from common_api.compat import asyncio as compat_asyncio
    from common_api.compat import flask as compat_flask
    from common_api.compat import flask_exporter as compat_flask_exporter
    from common_api.compat import gunicorn as compat_gunicorn
    from common_api.compat import problems
    from common_api.compat import prometheus as compat_prometheus
    from common_api.compat import werkzeug as compat_werkzeug

    assert compat_prometheus.SAFE_FILES
    assert compat_prometheus.METRIC_READS
    assert compat_prometheus.FOLD
    assert compat_gunicorn.PLAIN_ERRORS
    assert compat_gunicorn.WORKER_COUNT
    assert compat_flask.HOST_HANDLERS
    assert compat_werkzeug.REPOINT
    assert compat_flask_exporter.HOST_EXPORTER
    assert compat_asyncio.TASKS
    newer = tuple(gunicorn.version_info[:2]) >= (27, 0)
    assert compat_gunicorn.SLOW_CLIENTS_VERSION is newer
    assert bool(compat_gunicorn.SLOW_CLIENTS) is newer
    assert compat_gunicorn.preset_worker_class() == (
        "common_api.gunicorn_worker.PlainErrorThreadWorker" if newer
        else "common_api.gunicorn_worker.PlainErrorGthreadWorker")
    assert problems() == []


def test_gunicorns_error_page_goes_out_as_plain_text_through_the_workers_socket() -> None:
    from common_api.compat.gunicorn import PlainErrorSocket

    left, right = socket.socketpair()
    with left, right:
        gunicorn.util.write_error(PlainErrorSocket(left), 431,  # type: ignore[no-untyped-call,unused-ignore]
                                  "Request Header Fields Too Large", "Error parsing <headers>")
        left.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := right.recv(65536):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: text/plain; charset=utf-8" in head
    assert body == b"Request Header Fields Too Large: Error parsing <headers>"


@pytest.fixture
def checks_again(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Re-runs the prometheus_client checks after the test changed the library, and once
    more after it is restored; features turned off meanwhile are forgotten."""
    compat = _module(COMPAT)
    if compat is not None:
        monkeypatch.setattr(compat, "_off", {})
    yield monkeypatch
    monkeypatch.undo()
    _reload_prometheus_checks()


def _reload_prometheus_checks() -> None:
    """The checks run again (metric_store reads their outcome when it is called; without
    common_api.compat, as before issue 19, metric_store itself is loaded again)."""
    module = _module(f"{COMPAT}.prometheus") or _module("common_api.compat.prometheus.safe_files")
    assert module is not None
    importlib.reload(module)


def _health(app: Flask) -> dict[str, object]:
    body: dict[str, object] = app.test_client().get("/periodic-threads-health").get_json()
    return body


def test_prometheus_without_its_value_files_closure_turns_safe_files_off_and_says_so(
        checks_again: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A prometheus_client whose value class no longer closes over ``files`` and ``lock``:
    common_api used to carry on with {} and no lock, without a word."""

    def without_closure(process_identifier: object = None) -> type:
        class Value:
            def get(self) -> float:
                return 0.0
        return Value

    checks_again.setattr(values, "MultiProcessValue", without_closure)
    caplog.set_level(logging.WARNING, logger="common_api")
    _reload_prometheus_checks()
    _reload_prometheus_checks()  # checked again: still one line
    lines = [r.getMessage() for r in caplog.records if "files and lock" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "safe metric files" in lines[0] and "is off" in lines[0]
    assert "prometheus-client" in lines[0]

    from common_api.compat.prometheus import safe_files as metric_store

    original = MmapedDict.__init__
    metric_store.install()
    assert MmapedDict.__init__ is original  # nothing half-installed

    app = Flask("shape_missing")
    app.register_blueprint(bp)
    health = _health(app)
    assert health["healthy"] is True
    problems = health["worker_problems"]
    assert isinstance(problems, list) and len(problems) == 1
    assert "files and lock" in problems[0]["reason"] and problems[0]["unhealthy"] is False


def test_a_renamed_mmap_method_turns_safe_files_off(checks_again: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    checks_again.delattr(MmapedDict, "_init_value")
    caplog.set_level(logging.WARNING, logger="common_api")
    _reload_prometheus_checks()
    assert any("MmapedDict._init_value(key)" in record.getMessage()
               for record in caplog.records)
    compat_prometheus = importlib.import_module(f"{COMPAT}.prometheus")
    assert not compat_prometheus.SAFE_FILES
    assert compat_prometheus.METRIC_READS and compat_prometheus.FOLD  # the others stay on


def test_the_live_part_s_registry_shapes_hold_on_this_version() -> None:
    from prometheus_client import CollectorRegistry, Gauge

    from common_api.compat.prometheus import gauge_mode, gauge_series, registered_collectors

    registry = CollectorRegistry()
    fed = Gauge("compat_fed", "fed by a function", registry=registry, multiprocess_mode="max")
    fed.set_function(lambda: 7.0)
    labelled = Gauge("compat_labelled", "labelled", ["queue"], registry=registry)
    labelled.labels("a").set(1)
    assert {fed, labelled} <= set(registered_collectors(registry))
    [series] = gauge_series(fed, callbacks_only=True)
    assert series.from_function and [s.value for s in series.read()] == [7.0]
    assert gauge_series(labelled, callbacks_only=True) == []
    assert [s.labels for s in gauge_series(labelled)] == [{"queue": "a"}]
    assert gauge_mode(fed) == "max"


def test_an_asyncio_without_its_current_tasks_turns_tasks_off_and_says_so(
        checks_again: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """/tasks reads asyncio's private registry; where a Python lacks a name it needs, the
    endpoint answers 503 naming it, with one log line, and nothing is read."""
    import asyncio.tasks

    compat_asyncio = importlib.import_module(f"{COMPAT}.asyncio")
    checks_again.delattr(asyncio.tasks, "_current_tasks")
    caplog.set_level(logging.WARNING, logger="common_api")
    importlib.reload(compat_asyncio)
    importlib.reload(compat_asyncio)  # checked again: still one line
    lines = [r.getMessage() for r in caplog.records if "GET /tasks is off" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "_current_tasks" in lines[0]
    app = Flask("asyncio_shape_missing")
    app.register_blueprint(bp)
    response = app.test_client().get("/tasks")
    assert response.status_code == 503
    assert "GET /tasks is off: asyncio" in response.get_data(as_text=True)
    checks_again.undo()
    importlib.reload(compat_asyncio)
    assert compat_asyncio.TASKS


def test_safe_files_replace_no_function_of_prometheus_client(tmp_path: Path) -> None:
    """The safe metric files are common_api's own subclass, made through the one name
    prometheus_client makes value files by: MmapedDict itself is untouched (issue 19)."""
    probe = (
        "import os\n"
        "from prometheus_client import Counter\n"
        "from prometheus_client.mmap_dict import MmapedDict\n"
        "from common_api.compat import prometheus as compat\n"
        "from common_api.compat.prometheus import safe_files\n"
        "before = (MmapedDict.__init__, MmapedDict._init_value)\n"
        "safe_files.install()\n"
        "Counter('probe_hits', 'hits').inc()\n"
        "kinds = {type(f).__name__ for f in compat.value_files().values()}\n"
        "print(before == (MmapedDict.__init__, MmapedDict._init_value), sorted(kinds))\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.stdout.strip() == "True ['SafeMmapedDict']", done.stdout + done.stderr
