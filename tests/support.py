"""Helpers shared by the tests: free ports, polling with a deadline, live servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def delete_tree(path: Path) -> None:
    """Delete the directory ``path``; processes that write into it meanwhile (workers
    repairing their state directory) can leave it not empty, so delete until it is gone."""
    def gone() -> bool:
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()

    wait_until(gone, 10, interval=0.01, message=f"{path} deleted")


def freeze(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped (its threads may run a moment more)."""
    os.kill(pid, signal.SIGSTOP)

    def stopped() -> bool:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return stat[stat.rfind(b")") + 2:].split()[0] in (b"T", b"t")

    wait_until(stopped, 10, interval=0.01, message=f"process {pid} stopped")


@dataclass
class LiveServer:
    """A ``common-api serve`` process on a free loopback port."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.post(self.url + path, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def launch_server(log_dir: Path, *args: str, env: Mapping[str, str] | None = None
                  ) -> LiveServer:
    """Start ``common-api serve ARGS`` on a free loopback port, in its own session (so it
    can be stopped with everything it started); ``env`` is added to this environment."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "common_api.cli", "serve", *args,
             "--bind", f"127.0.0.1:{port}"],
            stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True)
    return LiveServer(f"http://127.0.0.1:{port}", proc, log_path)


def wait_ready(server: LiveServer, path: str = "/metrics",
               headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> LiveServer:
    """Poll ``path`` until the server answers it without a 5xx; fail at once if it exited."""

    def ready() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.log()}")
        try:
            return server.get(path, headers=dict(headers or {}), timeout=2).status_code < 500
        except requests.RequestException:
            # refused, reset, or a worker still booting that read-times out: all transient
            return False

    wait_until(ready, timeout, interval=0.1, message=f"server at {server.url}")
    return server


@contextmanager
def running_server(log_dir: Path, *args: str, env: Mapping[str, str] | None = None,
                   ready_path: str = "/metrics", headers: Mapping[str, str] | None = None
                   ) -> Iterator[LiveServer]:
    """A started, ready server that is stopped however the block ends."""
    server = launch_server(log_dir, *args, env=env)
    try:
        yield wait_ready(server, ready_path, headers)
    finally:
        server.stop()


def launch_gunicorn(log_dir: Path, *args: str, env: Mapping[str, str] | None = None
                    ) -> LiveServer:
    """Start plain ``gunicorn ARGS`` (no common_api config unless ARGS name one) on a free
    loopback port, like ``launch_server``."""
    port = free_port()
    log_path = log_dir / f"gunicorn-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args],
            stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True)
    return LiveServer(f"http://127.0.0.1:{port}", proc, log_path)


def assert_valid_exposition(text: str, openmetrics: str) -> None:
    """One valid exposition: promtool accepts the text format, prometheus_client's text and
    OpenMetrics parsers accept both forms, and no family appears twice."""
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_openmetrics,
    )
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    checked = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    names = [family.name for family in parse_text(text)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)), sorted(h for h in helps if helps.count(h) > 1)
    list(parse_openmetrics(openmetrics))


OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
