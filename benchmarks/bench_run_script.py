"""What the sandbox costs a CPU-bound script: POST /run_script against plain exec.

Starts a real gunicorn server (one worker, the package's gunicorn config) whose app
registers the blueprint plus one extra route, ``POST /bench/plain-exec``, that runs
the same script with a bare ``exec`` in the worker. Then it posts a 300,000-
iteration loop to both, alternating (so drift of the shared machine hits both
sides alike), and prints the medians, their ratio and the command. Bar: 2.5.

    python benchmarks/bench_run_script.py [--rounds N]

The module is also the app gunicorn loads (``bench_run_script:create_app()``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _procs import stop_process_group

LOOP = "total = 0\nfor i in range(300000):\n    total += i\nresult = total\n"
EXPECTED = str(sum(range(300000)))
HERE = Path(__file__).resolve().parent


def create_app() -> object:
    """The benchmarked app: the blueprint and a plain-exec route."""
    from flask import Flask, request

    from common_api import bp

    app = Flask("bench_run_script")
    app.register_blueprint(bp)

    @app.post("/bench/plain-exec")
    def plain_exec() -> tuple[str, int, dict[str, str]]:
        source = request.files["script"].read().decode("utf-8")
        namespace: dict[str, object] = {}
        exec(compile(source, "<script>", "exec"), namespace)
        return str(namespace.get("result")), 200, {"Content-Type": "text/plain"}

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if requests.get(url + "/metrics", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def _post(session: object, url: str) -> float:
    started = time.perf_counter()
    response = session.post(url, files={"script": ("loop.py", LOOP)}, timeout=60)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.text != EXPECTED:
        raise SystemExit(f"{url}: {response.status_code} {response.text[:200]!r}")
    return elapsed


def main() -> None:
    import requests

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", "python:common_api.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
        "--pythonpath", str(HERE), "bench_run_script:create_app()",
    ]
    env = dict(os.environ, COMMON_API_SCRIPT_TIMEOUT="30")
    repo = str(HERE.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(command, env=env, cwd=repo, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, 30)
        session = requests.Session()
        for _ in range(3):  # warm-up: the fork server starts on the first script
            _post(session, url + "/run_script")
            _post(session, url + "/bench/plain-exec")
        sandboxed, plain = [], []
        for _ in range(args.rounds):
            sandboxed.append(_post(session, url + "/run_script"))
            plain.append(_post(session, url + "/bench/plain-exec"))
    finally:
        stop_process_group(proc)
    sandbox_ms = statistics.median(sandboxed) * 1000
    plain_ms = statistics.median(plain) * 1000
    print(f"server:            {shlex.join(command)}")
    print(f"benchmark:         {shlex.join([sys.executable, *sys.argv])}")
    print(f"rounds:            {args.rounds} (alternating, after 3 warm-up rounds)")
    print(f"POST /run_script:  median {sandbox_ms:.1f} ms")
    print(f"plain exec route:  median {plain_ms:.1f} ms")
    print(f"ratio of medians:  {sandbox_ms / plain_ms:.2f} (bar: 2.5)")


if __name__ == "__main__":
    main()
