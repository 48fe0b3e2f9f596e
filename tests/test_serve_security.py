"""Over HTTP against ``common-api serve``: the token guards every endpoint, and without one
the guarded endpoints answer local programs but not web pages."""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer, running_server

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
APPS = Path(__file__).parent / "apps"
LOGGER = "demo.cache"
PROBE_SCRIPT = b"app.state.probe.hit()\nresult = 'ran'\n"
SET_QUERY = f"logger_name={LOGGER}&level=DEBUG"
# every guarded endpoint, by every method and body a page can send without a preflight
GUARDED = [
    ("GET", "/env", {}),
    ("GET", f"/loglevel?{SET_QUERY}", {}),
    ("POST", "/loglevel", {"data": {"logger_name": LOGGER, "level": "DEBUG"}}),
    ("POST", "/loglevel", {"files": {"logger_name": (None, LOGGER), "level": (None, "DEBUG")}}),
    ("POST", f"/loglevel?{SET_QUERY}", {"data": "x", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/metrics/reset", {}),
    ("POST", "/metrics/reset", {"data": "x", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/run_script", {"files": {"script": ("probe.py", PROBE_SCRIPT)}}),
]
PAGE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "no-cors", "Referer": "https://evil.example/attack.html",
        "User-Agent": "Mozilla/5.0"}
ATTACKS = {
    "cross-site page": PAGE,
    "DNS rebinding": {"Host": "rebind.evil.example:7000",
                      "Origin": "http://rebind.evil.example:7000", "Sec-Fetch-Site": "same-origin"},
    "DNS rebinding, GET without Origin": {"Host": "rebind.evil.example:7000"},
}


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
    page_with_token = {**ATTACKS["DNS rebinding"], **PAGE, **good}
    assert requests.post(server.url + "/run_script", headers=page_with_token, timeout=30,
                         files={"script": ("s.py", SEED_SCRIPT)}).text == "(27, 1, 64, 1, 576)"


# web pages -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """The demo plus app.state.probe, 2 workers, no token."""
    log_dir = tmp_path_factory.mktemp("browser")
    probe_file = log_dir / "probe-hits"
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    with running_server(log_dir, "--app", "probe_app:app", "--workers", "2",
                        env={"PYTHONPATH": path, "PROBE_FILE": str(probe_file),
                             "COMMON_API_SCRIPT_HOST_PACKAGES": "probe_app"}) as server:
        yield server, probe_file


def level_of(server: LiveServer) -> str:
    entry = server.get("/loglevel", params={"logger_name": LOGGER, "format": "json"}).json()
    return str(entry["level"])


def work_items(base_url: str) -> float:
    text = requests.get(base_url + "/metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "demo_work_items_total")


def assert_refused_and_nothing_changed(base_url: str, server: LiveServer, probe_file: Path,
                                       headers: dict[str, str]) -> None:
    for _ in range(3):
        assert server.get("/work").status_code == 200
    before = (level_of(server), work_items(server.url))
    assert before[1] >= 3
    for method, path, kwargs in GUARDED:
        sent_headers = {**headers, **kwargs.get("headers", {})}  # type: ignore[dict-item]
        arguments = {key: value for key, value in kwargs.items() if key != "headers"}
        response = requests.request(method, base_url + path, headers=sent_headers, timeout=30,
                                    **arguments)  # type: ignore[arg-type]
        assert response.status_code == 403, (method, path, response.text[:300])
        assert "COMMON_API_TOKEN" in response.text or "ALLOWED_HOSTS" in response.text
    for _ in range(4):  # answers from either worker
        assert (level_of(server), work_items(server.url)) == before
    assert not probe_file.exists()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_web_pages_get_403_on_every_guarded_endpoint_and_change_nothing(
        probe_server: tuple[LiveServer, Path], attack: str) -> None:
    server, probe_file = probe_server
    assert_refused_and_nothing_changed(server.url, server, probe_file, ATTACKS[attack])


def curl(*args: str) -> str:
    run = subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True,
                         text=True, timeout=60, check=True)
    return run.stdout


def test_the_seeds_curl_examples_answer_as_documented(probe_server: tuple[LiveServer, Path],
                                                     tmp_path: Path) -> None:
    server, probe_file = probe_server
    local = server.url.replace("127.0.0.1", "localhost")  # the seed's spelling
    assert '"PATH"' in curl(f"{local}/env")
    assert curl(f"{local}/loglevel?logger_name={LOGGER}&level=DEBUG") == (
        f"Set {LOGGER} level to DEBUG (including all handlers)")
    assert level_of(server) == "DEBUG"
    assert curl("-X", "POST", f"{local}/metrics/reset") == "ok"
    assert work_items(server.url) == 0
    script = tmp_path / "script.py"
    script.write_bytes(SEED_SCRIPT)
    assert curl("-X", "POST", f"{local}/run_script", "-F", f"script=@{script}") == (
        "(27, 1, 64, 1, 576)")
    probe = tmp_path / "probe.py"
    probe.write_bytes(PROBE_SCRIPT)
    assert curl("-X", "POST", f"{local}/run_script", "-F", f"script=@{probe}") == "ran"
    assert len(probe_file.read_text().split()) == 1
    probe_file.unlink()
    assert curl("-X", "POST", f"{local}/loglevel", "-d", f"logger_name={LOGGER}",
                "-d", "level=WARNING") == f"Set {LOGGER} level to WARNING (including all handlers)"
    assert level_of(server) == "WARNING"


# a reverse proxy on the same host --------------------------------------------------------

class Proxy(ThreadingHTTPServer):
    """``location /ops/ { proxy_pass http://127.0.0.1:PORT/; }`` as nginx does it by default:
    the Host header becomes the upstream's, the client's headers pass through, and
    ``X-Forwarded-For`` is added only when configured (``forwarded_for``)."""

    daemon_threads = True

    def __init__(self, upstream: str, forwarded_for: bool) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.forwarded_for = forwarded_for

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ops"


class ProxyHandler(BaseHTTPRequestHandler):
    server: Proxy

    def forward(self) -> None:
        upstream = self.server.upstream
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in {"host", "connection", "content-length"}}
        headers["Host"] = str(upstream.netloc)
        if self.server.forwarded_for:
            headers["X-Forwarded-For"] = self.client_address[0]
        connection = http.client.HTTPConnection(str(upstream.hostname), upstream.port,
                                                timeout=30)
        try:
            connection.request(self.command, self.path.removeprefix("/ops"), body, headers)
            reply = connection.getresponse()
            payload = reply.read()
        finally:
            connection.close()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in {"connection", "transfer-encoding", "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["bare", "with X-Forwarded-For"])
def proxy(request: pytest.FixtureRequest, probe_server: tuple[LiveServer, Path]
          ) -> Iterator[Proxy]:
    server = Proxy(probe_server[0].url, forwarded_for=request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_web_pages_through_a_reverse_proxy_get_403_and_change_nothing(
        probe_server: tuple[LiveServer, Path], proxy: Proxy) -> None:
    server, probe_file = probe_server
    assert requests.get(proxy.url + "/periodic-threads-health", timeout=30).status_code == 200
    assert_refused_and_nothing_changed(proxy.url, server, probe_file, PAGE)
    plain = requests.post(proxy.url + "/metrics/reset", timeout=30)
    assert plain.status_code == (403 if proxy.forwarded_for else 200)
