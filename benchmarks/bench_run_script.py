"""What the sandbox costs a script: POST /run_script against plain exec.

Starts a real gunicorn server (one worker, the package's gunicorn config) whose app
registers the blueprint plus one extra route, ``POST /bench/plain-exec``, that runs
the same script with a bare ``exec`` in the worker (with the same ``app``). Then it
posts, alternating (so drift of the shared machine hits both sides alike):

* a 300,000-iteration loop (bar: 1.5x plain exec);
* a script making 1,000 calls of a live host object's method under ``app.state``
  (each a round trip to the worker in the sandbox), and a trivial script, so the
  cost of one host call is (1,000-call script - trivial script) / 1,000;

and prints the medians, their ratios and the command.

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
HOST_CALLS = ("rank = app.state.metadata.is_first_rank\nfirst = 0\n"
              "for i in range(1000):\n    first += rank()\nresult = first\n")
TRIVIAL = "result = 1000\n"
HERE = Path(__file__).resolve().parent


class Metadata:
    """A host object (this module is the app's package, so it is host code)."""

    def is_first_rank(self) -> bool:
        return True


def create_app() -> object:
    """The benchmarked app: the blueprint and a plain-exec route."""
    from flask import Flask, request

    from common_api import bp

    app = Flask("bench_run_script")
    app.register_blueprint(bp)
    app.state.metadata = Metadata()  # type: ignore[attr-defined]

    @app.post("/bench/plain-exec")
    def plain_exec() -> tuple[str, int, dict[str, str]]:
        source = request.files["script"].read().decode("utf-8")
        namespace: dict[str, object] = {"app": app}
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


def _post(session: object, url: str, script: str = LOOP, expected: str = EXPECTED) -> float:
    started = time.perf_counter()
    response = session.post(url, files={"script": ("s.py", script)}, timeout=60)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.text != expected:
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
    env = dict(os.environ, COMMON_API_SCRIPT_TIMEOUT="30", COMMON_API_SCRIPT_ENABLED="true")
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
        runs: dict[str, list[float]] = {key: [] for key in (
            "loop", "loop-plain", "calls", "calls-plain", "trivial", "trivial-plain")}
        for _ in range(args.rounds):
            for key, script, expected in (("loop", LOOP, EXPECTED),
                                          ("calls", HOST_CALLS, "1000"),
                                          ("trivial", TRIVIAL, "1000")):
                runs[key].append(_post(session, url + "/run_script", script, expected))
                runs[key + "-plain"].append(
                    _post(session, url + "/bench/plain-exec", script, expected))
    finally:
        stop_process_group(proc)
    ms = {key: statistics.median(values) * 1000 for key, values in runs.items()}
    per_call_us = (ms["calls"] - ms["trivial"]) / 1000 * 1000
    print(f"server:            {shlex.join(command)}")
    print(f"benchmark:         {shlex.join([sys.executable, *sys.argv])}")
    print(f"rounds:            {args.rounds} (alternating, after 3 warm-up rounds)")
    print("300,000-iteration loop:")
    print(f"  POST /run_script:  median {ms['loop']:.1f} ms")
    print(f"  plain exec route:  median {ms['loop-plain']:.1f} ms")
    print(f"  ratio of medians:  {ms['loop'] / ms['loop-plain']:.2f} (bar: 1.5)")
    print("1,000 host calls (app.state.metadata.is_first_rank()):")
    print(f"  POST /run_script:  median {ms['calls']:.1f} ms")
    print(f"  plain exec route:  median {ms['calls-plain']:.1f} ms")
    print(f"  trivial script:    median {ms['trivial']:.1f} ms (plain {ms['trivial-plain']:.1f})")
    print(f"  one host call:     {per_call_us:.0f} us (round trip to the worker)")


if __name__ == "__main__":
    main()
