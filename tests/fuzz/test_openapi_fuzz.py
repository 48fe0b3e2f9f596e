"""Property-based fuzzing of a live ``common-api serve`` against its own /openapi.json.

schemathesis generates requests from the document (valid and invalid ones) and checks every
answer against it: status codes, content types, bodies, and that invalid input is refused
and valid input accepted. On top of its checks this test reads every recorded response and
fails on a traceback or an HTML page in any body (but /ui's own page), or a 5xx other than
the documented 500 of a failing script.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import LiveServer

# slow, and the same on every pin of gunicorn and prometheus_client: tox.ini runs it in
# the py311, py313 and min envs only
pytestmark = [pytest.mark.server, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_REQUESTS = 1000


def recorded_responses(report: Path) -> list[tuple[str, str, int, str]]:
    """(method, url, status, body) of every response schemathesis recorded."""
    responses = []
    for line in report.read_text().splitlines():
        event = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response")
            if not response:
                continue
            content = response.get("content") or {}
            raw = base64.b64decode(content["$base64"]) if "$base64" in content else b""
            request = interaction["request"]
            responses.append((request["method"], request["uri"], int(response["status_code"]),
                              raw.decode("utf-8", "replace")))
    return responses


def test_fuzzing_finds_no_violation(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # short windows keep /profile and /memory quick: the served document states the limit,
    # so every `seconds` the fuzzer calls valid is one the server accepts
    server: LiveServer = start_server("--workers", "2",
                                      env={"COMMON_API_PROFILE_MAX_SECONDS": "0.05"})
    report = tmp_path / "fuzz.ndjson"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
         f"{server.url}/openapi.json", "--max-examples", "100", "--workers", "1",
         "--generation-deterministic", "--report", "ndjson", "--report-ndjson-path",
         str(report), "--no-color"],
        capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - started
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]

    responses = recorded_responses(report)
    print(f"\nfuzz: {len(responses)} responses in {elapsed:.1f} s\n{summary[-600:]}")
    assert len(responses) >= MIN_REQUESTS
    for method, url, status, body in responses:
        assert "Traceback (most recent call last)" not in body, (method, url, body[:500])
        page = status == 200 and url.split("?", 1)[0].endswith("/ui")  # the operator's page
        assert page or "<html" not in body.lower(), (method, url, body[:500])
        if status >= 500:
            assert (method, status) == ("POST", 500) and url.endswith("/run_script"), (
                method, url, status, body[:300])
            assert body.startswith("Error executing script: "), body[:300]
    assert server.get("/periodic-threads-health").status_code == 200
