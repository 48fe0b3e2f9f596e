"""Over HTTP against ``common-api serve``: the token guards every endpoint."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.server

TOKEN = "e2e-t0ken-value"
SEED_SCRIPT = b"result = app.state.lmcache_adapter.lmcache_engine.metadata.kv_shape\n"
CALLS = [
    ("get", "/env", {}),
    ("get", "/loglevel", {}),
    ("get", "/loglevel?logger_name=demo.cache", {}),
    ("get", "/loglevel?logger_name=demo.cache&level=INFO", {}),
    ("get", "/metrics", {}),
    ("post", "/metrics/reset", {}),
    ("get", "/threads", {}),
    ("get", "/periodic-threads", {}),
    ("get", "/periodic-threads/heartbeat", {}),
    ("get", "/periodic-threads-health", {}),
    ("post", "/run_script", {"files": {"script": ("s.py", SEED_SCRIPT)}}),
    ("get", "/openapi.json", {}),
]


def test_with_a_token_every_endpoint_needs_it(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--workers", "2", env={"COMMON_API_TOKEN": TOKEN},
                          ready_path="/openapi.json")
    good = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, kwargs in CALLS:
        missing = getattr(requests, method)(server.url + path, timeout=30, **kwargs)
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"].startswith("Bearer"), path
        wrong = getattr(requests, method)(server.url + path, timeout=30,
                                          headers={"Authorization": "Bearer nope"}, **kwargs)
        assert wrong.status_code == 403, path
        ok = getattr(requests, method)(server.url + path, timeout=30, headers=good, **kwargs)
        assert ok.status_code == 200, (path, ok.text[:200])
    assert TOKEN not in requests.get(server.url + "/env", headers=good, timeout=30).text
