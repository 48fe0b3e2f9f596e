"""The escape corpus against a running server: POST /run_script under real gunicorn.

The server is ``common-api serve`` (the demo component, with periodic threads of
every level), a 2-second script timeout, the corpus's allowed imports, a token in
its config and a secret in its environment. No attack may succeed or leak either
secret; afterwards the server is healthy and answers an honest script correctly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sandbox.corpus_tools import CORPUS, Attack, shows_escape
from sandbox.helpers import CORPUS_IMPORTS, ENV_CANARY, ENV_CANARY_NAME, TOKEN_CANARY
from support import LiveServer, running_server

TIMEOUT = 2.0
AUTH = {"Authorization": f"Bearer {TOKEN_CANARY}"}
SEED = (
    "lmcache_engine = app.state.lmcache_adapter.lmcache_engine\n"
    "result = {'is_first_rank': lmcache_engine.metadata.is_first_rank(),"
    " 'model_version': lmcache_engine.metadata.kv_shape}\n"
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_dir = tmp_path_factory.mktemp("sandbox-server")
    env = dict(
        COMMON_API_SCRIPT_TIMEOUT=str(TIMEOUT),
        COMMON_API_SCRIPT_ALLOWED_IMPORTS=",".join(sorted(CORPUS_IMPORTS)),
        COMMON_API_TOKEN=TOKEN_CANARY,
        **{ENV_CANARY_NAME: ENV_CANARY},
    )
    with running_server(log_dir, "--workers", "1", env=env, headers=AUTH) as live:
        yield live


def post_script(server: LiveServer, source: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = server.post("/run_script", files={"script": ("s.py", source)}, headers=AUTH)
    return response.status_code, response.text, time.monotonic() - started


def test_seed_example_over_http(server: LiveServer) -> None:
    status, body, _ = post_script(server, SEED)
    assert (status, body) == (200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")


@pytest.mark.parametrize("attack", CORPUS, ids=lambda a: a.id)
def test_attack_fails_safely_over_http(server: LiveServer, attack: Attack) -> None:
    status, body, elapsed = post_script(server, attack.source)
    assert not shows_escape(body), body
    assert TOKEN_CANARY not in body and ENV_CANARY not in body
    assert "Traceback" not in body
    if attack.dos:
        assert elapsed < TIMEOUT + 1.0 + 0.5, f"answered after {elapsed:.2f}s"  # + HTTP
        assert status in (200, 500), body
    else:
        assert status == 500, body
        assert body.startswith("Error executing script: "), body
    if attack.probe is not None:
        probe_status, probe_body, _ = post_script(server, attack.probe)
        assert not shows_escape(probe_body), (probe_status, probe_body)


def test_server_healthy_after_corpus(server: LiveServer) -> None:
    assert server.get("/periodic-threads-health", headers=AUTH).status_code == 200
    status, body, _ = post_script(server, SEED)
    assert (status, body) == (200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")
