"""The wide-allowlist corpus (issue 16) against a real 2-worker server.

``common-api serve`` of the realistic host (``sandbox/hosts/lmcache_host.py``) with
two gunicorn workers, scripts enabled with ``WIDE_IMPORTS``, a token and a secret in
its environment (so in the master's and in both workers'). Each script of
``WIDE_CORPUS`` is posted to ``/run_script``; whichever worker answers, the answer
must show no escape (no ``ESCAPED`` marker, no canary: attack 88 reads the
master's and the other worker's environments), nothing tagged by the corpus may
outlive the request, the marker directory stays empty and the clock is not set.
Afterwards both workers still answer an honest script.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox.corpus_tools import WIDE_CORPUS, Attack, unavailable
from sandbox.helpers import ENV_CANARY, ENV_CANARY_NAME, TOKEN_CANARY, WIDE_IMPORTS
from sandbox.side_effects import (
    ClockWatch,
    describe,
    escape_evidence,
    leftover_processes,
    stop_processes,
)
from support import LiveServer, running_server, wait_until

HOSTS = Path(__file__).resolve().parent / "hosts"
TIMEOUT = 5.0
AUTH = {"Authorization": f"Bearer {TOKEN_CANARY}"}

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_dir = tmp_path_factory.mktemp("wide-corpus-server")
    env = {
        "COMMON_API_SCRIPT_ENABLED": "1",
        "COMMON_API_SCRIPT_ALLOWED_IMPORTS": ",".join(sorted(WIDE_IMPORTS)),
        "COMMON_API_SCRIPT_TIMEOUT": str(TIMEOUT),
        "COMMON_API_TOKEN": TOKEN_CANARY,
        "PYTHONPATH": str(HOSTS),
        ENV_CANARY_NAME: ENV_CANARY,
    }
    with running_server(log_dir, "--app", "lmcache_host:create_app()", "--workers", "2",
                        env=env, headers=AUTH) as live:
        yield live


def post_script(server: LiveServer, source: str) -> tuple[int, str]:
    response = server.post("/run_script", files={"script": ("s.py", source)}, headers=AUTH)
    return response.status_code, response.text


@pytest.mark.parametrize("attack", WIDE_CORPUS, ids=lambda a: a.id)
def test_wide_attack_leaves_no_trace_over_http(attack: Attack, server: LiveServer,
                                               tmp_path: Path) -> None:
    if reason := unavailable(attack):
        pytest.skip(reason)
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    with ClockWatch() as clock:
        status, body = post_script(server, attack.source_with(marker_dir))
        clock_set = clock.was_set()
    pids = leftover_processes()
    leftovers = [describe(pid) for pid in pids]
    stop_processes(pids)
    evidence = escape_evidence(body, marker_dir, leftovers, clock_set)
    assert evidence == [], f"{attack.id} escaped the server's runner: {evidence}"
    assert "Traceback" not in body
    assert status == 500 and body.startswith("Error executing script: "), (status, body)


def test_server_serves_after_the_wide_corpus(server: LiveServer) -> None:
    source = ("engine = app.state.lmcache_adapter.lmcache_engine\n"
              "result = engine.metadata.is_first_rank()")
    for _ in range(4):
        assert post_script(server, source) == (200, "True")
    seen: set[int] = set()

    def both_workers_seen() -> bool:
        seen.add(server.get("/host/ttl", headers=AUTH).json()["pid"])
        return len(seen) == 2

    # Which worker accepts a connection is the kernel's choice: poll until both answered.
    wait_until(both_workers_seen, 30, interval=0.01, message="both workers answering")
    assert server.get("/periodic-threads-health", headers=AUTH).status_code == 200
