"""The escape corpus against a running server: POST /run_script under real gunicorn.

The server is ``common-api serve`` of the realistic host
(``sandbox/hosts/lmcache_host.py``: a Flask subclass, framework references and
container subclasses under ``app.state``, a critical periodic thread every 0.2 s),
a 2-second script timeout, the corpus's allowed imports, a token in its config and
a secret in its environment. No attack may succeed or leak a secret; health is
polled throughout the corpus and must answer 200 every time; afterwards the server
answers an honest script correctly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox.corpus_tools import CORPUS, Attack, shows_escape
from sandbox.helpers import CORPUS_IMPORTS, ENV_CANARY, ENV_CANARY_NAME, TOKEN_CANARY
from support import LiveServer, running_server

HOSTS = Path(__file__).resolve().parent / "hosts"

TIMEOUT = 2.0
AUTH = {"Authorization": f"Bearer {TOKEN_CANARY}"}
SEED = (
    "lmcache_engine = app.state.lmcache_adapter.lmcache_engine\n"
    "result = {'is_first_rank': lmcache_engine.metadata.is_first_rank(),"
    " 'model_version': lmcache_engine.metadata.kv_shape}\n"
)

# slow, and the same on every pin of gunicorn and prometheus_client: tox.ini runs it in
# the py311, py313 and min envs only
pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_dir = tmp_path_factory.mktemp("sandbox-server")
    env = dict(
        COMMON_API_SCRIPT_ENABLED="true",
        COMMON_API_SCRIPT_TIMEOUT=str(TIMEOUT),
        COMMON_API_SCRIPT_ALLOWED_IMPORTS=",".join(sorted(CORPUS_IMPORTS)),
        COMMON_API_TOKEN=TOKEN_CANARY,
        PYTHONPATH=str(HOSTS),
        **{ENV_CANARY_NAME: ENV_CANARY},
    )
    with running_server(log_dir, "--app", "lmcache_host:create_app()", "--workers", "1",
                        "--threads", "4", env=env, headers=AUTH) as live:
        yield live


class HealthWatch:
    """Polls /periodic-threads-health from another client while the corpus runs."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.answers: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                status = self.server.get("/periodic-threads-health", headers=AUTH,
                                         timeout=10).status_code
            except Exception:  # recorded: a refused or timed-out poll is a failure too
                status = -1
            self.answers.append(status)


@pytest.fixture(scope="module")
def health(server: LiveServer) -> Iterator[HealthWatch]:
    watch = HealthWatch(server)
    yield watch
    watch.stop.set()
    watch.thread.join(15)


def post_script(server: LiveServer, source: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = server.post("/run_script", files={"script": ("s.py", source)}, headers=AUTH)
    return response.status_code, response.text, time.monotonic() - started


def test_seed_example_over_http(server: LiveServer) -> None:
    status, body, _ = post_script(server, SEED)
    assert (status, body) == (200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")


@pytest.mark.parametrize("attack", CORPUS, ids=lambda a: a.id)
def test_attack_fails_safely_over_http(server: LiveServer, attack: Attack,
                                       health: HealthWatch) -> None:
    status, body, elapsed = post_script(server, attack.source)
    assert not shows_escape(body), body
    assert TOKEN_CANARY not in body and ENV_CANARY not in body
    assert "Traceback" not in body
    if attack.dos:
        assert elapsed < TIMEOUT + 1.0 + 0.5, f"answered after {elapsed:.2f}s"  # + HTTP
        assert status in (200, 500), body
    elif attack.expect is not None:  # it may run, and shows only what it may
        assert status == 200 and any(w in body for w in attack.expect.split("|")), body
    else:
        assert status == 500, body
        assert body.startswith("Error executing script: "), body
    if attack.probe is not None:
        probe_status, probe_body, _ = post_script(server, attack.probe)
        assert not shows_escape(probe_body), (probe_status, probe_body)


def test_server_healthy_throughout_and_after_corpus(server: LiveServer,
                                                    health: HealthWatch) -> None:
    assert len(health.answers) >= 20, health.answers
    assert set(health.answers) == {200}, health.answers  # never a missed window
    assert server.get("/periodic-threads-health", headers=AUTH).status_code == 200
    status, body, _ = post_script(server, SEED)
    assert (status, body) == (200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")


def test_reconfiguration_script_over_http_and_the_host_sees_it(server: LiveServer) -> None:
    status, body, _ = post_script(server, "app.state.engine.l1.write_ttl_seconds = 30\n"
                                          "result = app.state.engine.l1.write_ttl_seconds\n")
    assert (status, body) == (200, "30")
    seen = server.get("/host/ttl", headers=AUTH).json()
    assert seen["write_ttl_seconds"] == 30
    assert seen["history"] == ["started"]  # the corpus's container mutators changed nothing
    status, body, _ = post_script(server, "app.state.engine.l1.write_ttl_seconds = 'x' * 70000")
    assert status == 500 and "only None, bool" in body
    assert server.get("/host/ttl", headers=AUTH).json()["write_ttl_seconds"] == 30
