"""End to end: ``common-api serve`` (real gunicorn, the demo) answers every seed example."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer, wait_until

pytestmark = pytest.mark.server

TEXT = "text/plain; charset=utf-8"
WORKERS = 2  # common-api serve's default
SEED_SCRIPT = b"""lmcache_engine = app.state.lmcache_adapter.lmcache_engine

result = {
    "is_first_rank": lmcache_engine.metadata.is_first_rank(),
    "model_version": lmcache_engine.metadata.kv_shape,
}
"""


def test_env(live_server: LiveServer) -> None:
    response = live_server.get("/env")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == sorted(body) and "PATH" in body


def test_loglevel_list_get_set_and_invalid(live_server: LiveServer) -> None:
    listing = live_server.get("/loglevel")
    assert listing.status_code == 200 and listing.headers["Content-Type"] == TEXT
    assert listing.text.startswith("=== Loggers and Levels ===\n")
    assert "\ndemo.heartbeat: NOTSET\n" in listing.text
    assert live_server.get("/loglevel", params={"logger_name": "demo.heartbeat"}).text == (
        "demo.heartbeat: NOTSET")
    done = live_server.get("/loglevel", params={"logger_name": "demo.heartbeat",
                                                "level": "DEBUG"})
    assert done.text == "Set demo.heartbeat level to DEBUG (including all handlers)"
    assert live_server.get("/loglevel", params={"logger_name": "demo.heartbeat"}).text == (
        "demo.heartbeat: DEBUG")
    invalid = live_server.get("/loglevel", params={"logger_name": "demo.heartbeat",
                                                   "level": "INVALID_LEVEL"})
    assert (invalid.status_code, invalid.text) == (400, "Invalid log level: INVALID_LEVEL")


def test_metrics_and_reset(live_server: LiveServer) -> None:
    for _ in range(3):
        assert live_server.get("/work").status_code == 200
    response = live_server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"demo_work_items", "flask_http_request", "common_api_periodic_thread_runs",
            "common_api_info"} <= names
    reset = live_server.post("/metrics/reset")
    assert (reset.status_code, reset.text) == (200, "ok")
    after = {s.name: s.value for f in text_string_to_metric_families(live_server.get(
        "/metrics").text) for s in f.samples if not s.labels}
    assert after["demo_work_items_total"] == 0


def test_threads_all_by_name_and_by_id(live_server: LiveServer) -> None:
    text = live_server.get("/threads").text
    assert text.rstrip().splitlines()[-2] == "=== Thread Summary ==="
    assert "heartbeat" in text
    by_name = live_server.get("/threads", params={"name": "HEARTBEAT"}).text
    assert by_name.endswith("Total threads: 1\n")
    ident = live_server.get("/threads", params={"name": "heartbeat", "format": "json"}).json()[
        "threads"][0]["ident"]
    by_id = live_server.get("/threads", params={"thread_id": ident}).text
    assert by_id.startswith("Thread: <Thread(heartbeat") and by_id.endswith("Total threads: 1\n")
    assert live_server.get("/threads", params={"thread_id": "12x"}).status_code == 400


def test_periodic_threads_seed_examples(live_server: LiveServer) -> None:
    def all_active() -> bool:
        summary = live_server.get("/periodic-threads").json()["summary"]
        return bool(summary["active_count"] == summary["total_count"] == 4 * WORKERS)

    wait_until(all_active, 10, message="demo threads active")
    body = live_server.get("/periodic-threads").json()
    assert set(body["summary"]["by_level"]) == {"critical", "high", "medium", "low"}
    critical = live_server.get("/periodic-threads", params={"level": "critical"}).json()
    assert {t["name"] for t in critical["threads"]} == {"heartbeat"}
    assert len({t["pid"] for t in critical["threads"]}) == WORKERS
    running = live_server.get("/periodic-threads", params={"running_only": "true"}).json()
    assert running["summary"]["running_count"] == 4 * WORKERS
    bad = live_server.get("/periodic-threads", params={"level": "unknown"})
    assert (bad.status_code, bad.json()) == (
        400, {"error": "Invalid level: unknown. Valid values: critical, high, medium, low"})
    one = live_server.get("/periodic-threads/heartbeat")
    assert one.status_code == 200
    assert (one.json()["name"], one.json()["level"]) == ("heartbeat", "critical")
    assert one.json()["pid"] == int(one.headers["X-Worker-Pid"])
    assert len(one.json()["workers"]) == WORKERS
    missing = live_server.get("/periodic-threads/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "Thread not found: nope"})
    health = live_server.get("/periodic-threads-health")
    assert (health.status_code, health.json()) == (
        200, {"healthy": True, "unhealthy_count": 0, "unhealthy_threads": [], "workers": WORKERS})


def test_run_script_seed_example_and_errors(live_server: LiveServer) -> None:
    response = live_server.post("/run_script", files={"script": ("scratch.py", SEED_SCRIPT)})
    assert (response.status_code, response.text) == (
        200, "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}")
    assert response.headers["Content-Type"] == TEXT
    missing = live_server.post("/run_script")
    assert (missing.status_code, missing.text) == (400, "No script file provided")
    denied = live_server.post("/run_script", files={"script": ("x.py", b"import os\n")})
    assert (denied.status_code, denied.text) == (
        500, "Error executing script: Import of 'os' is not allowed")


# ------------------------------------------------------- every example of the seed document
#
# The examples are read from the seed itself (docs/common_apis.rst): every `curl` line of
# its bash blocks, and every "Error Response" block. Each one is sent to the live demo and
# answered with the seed's status code, content type and body (exactly where the seed
# shows a literal text, by shape where it shows JSON: every key the seed shows, with the
# seed's JSON types, ISO-8601 where the seed shows a time).

SEED_DOC = Path(__file__).resolve().parents[1] / "docs" / "common_apis.rst"
HOST = "http://localhost:7000"
LEVEL_NAMES = {"critical", "high", "medium", "low"}


@dataclass(frozen=True)
class SeedBlock:
    section: str  # the endpoint heading, e.g. "GET /loglevel"
    label: str  # the paragraph just before the block, e.g. "**Example Response** (get):"
    language: str
    text: str


def seed_blocks() -> list[SeedBlock]:
    lines = SEED_DOC.read_text(encoding="utf-8").splitlines()
    blocks: list[SeedBlock] = []
    section = label = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("``") and underline and set(underline) <= {"-", "="}:
            section = line.split("``")[1]
        elif line.startswith(".. code-block::"):
            language = line.split("::")[1].strip()
            body: list[str] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                body.append(lines[i])
                i += 1
            blocks.append(SeedBlock(section, label, language,
                                    textwrap.dedent("\n".join(body)).strip("\n")))
            label = ""
            continue
        elif line.strip() and not line.startswith((" ", "..", "=", "-")):
            label = line.strip()
        i += 1
    return blocks


def seed_block(section: str, label: str) -> SeedBlock:
    (block,) = [b for b in seed_blocks() if b.section == section and b.label == label]
    return block


def seed_curls() -> list[str]:
    commands: list[str] = []
    for block in seed_blocks():
        if block.language != "bash":
            continue
        joined = block.text.replace("\\\n", " ")
        commands += [" ".join(line.split()) for line in joined.splitlines()
                     if line.strip().startswith("curl ")]
    return commands


@dataclass(frozen=True)
class Curl:
    method: str
    path: str  # with the query
    form_file: str | None  # the -F "script=@FILE" upload


def parse_curl(command: str) -> Curl:
    words = shlex.split(command)
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    (url,) = [w for w in words if w.startswith(HOST)]
    form = words[words.index("-F") + 1] if "-F" in words else None
    return Curl(method, url[len(HOST):], form.split("@", 1)[1] if form else None)


def media_type(response: requests.Response) -> str:
    return response.headers["Content-Type"].split(";")[0].strip()


def assert_shape(actual: Any, seed: Any, where: str = "body") -> None:
    """``actual`` has every key the seed shows, recursively, with the seed's JSON types."""
    if isinstance(seed, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        if seed and set(seed) <= LEVEL_NAMES:  # by_level: the levels present, each shaped alike
            assert set(actual) <= LEVEL_NAMES, f"{where}: {sorted(actual)}"
            for key, value in actual.items():
                assert_shape(value, next(iter(seed.values())), f"{where}.{key}")
            return
        missing = set(seed) - set(actual)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, value in seed.items():
            assert_shape(actual[key], value, f"{where}.{key}")
    elif isinstance(seed, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        if seed:
            assert actual, f"{where}: empty, the seed shows entries"
            for index, item in enumerate(actual):
                assert_shape(item, seed[0], f"{where}[{index}]")
    elif isinstance(seed, bool):
        assert isinstance(actual, bool), f"{where}: {actual!r} is not a boolean"
    elif isinstance(seed, float):
        assert isinstance(actual, float), f"{where}: {actual!r} is not a float like {seed!r}"
    elif isinstance(seed, int):
        assert isinstance(actual, int) and not isinstance(actual, bool), f"{where}: {actual!r}"
    elif isinstance(seed, str):
        assert isinstance(actual, str), f"{where}: {actual!r} is not a string"
        with contextlib.suppress(ValueError):
            datetime.fromisoformat(seed)
            datetime.fromisoformat(actual)  # a time where the seed shows one: ISO-8601 too


def seed_json(section: str, label: str) -> Any:
    return json.loads(seed_block(section, label).text)


def seed_text(section: str, label: str) -> str:
    return seed_block(section, label).text


def check_env(response: requests.Response) -> None:
    assert media_type(response) == "application/json"
    body = response.json()
    seed = seed_json("GET /env", "**Example Response**:")
    assert isinstance(body, dict) and list(body) == sorted(body)
    assert all(isinstance(v, str) for v in body.values()) and set(seed) & set(body)


def check_loglevel_list(response: requests.Response) -> None:
    seed = seed_text("GET /loglevel", "**Example Response** (list all):").splitlines()
    lines = response.text.splitlines()
    assert lines[0] == seed[0]
    assert set(seed[1:]) <= set(lines[1:]), f"{seed[1:]} not all in {lines}"


def exact_text(section: str, label: str) -> Callable[[requests.Response], None]:
    def check(response: requests.Response) -> None:
        assert response.text == seed_text(section, label)
    return check


def check_metrics(response: requests.Response) -> None:
    families = list(text_string_to_metric_families(response.text))
    assert families and any(f.name == "common_api_periodic_thread_runs" for f in families)


def check_reset(response: requests.Response) -> None:
    assert response.text == "ok"  # the seed: ``"ok"`` on success


def check_thread_dump(response: requests.Response) -> None:
    lines = response.text.rstrip("\n").splitlines()
    assert lines[-2] == "=== Thread Summary ===" and lines[-1].startswith("Total threads: ")
    count = int(lines[-1].split(": ")[1])
    assert response.text.count("\nStack trace:") + response.text.startswith("Stack") == count


def periodic_listing(predicate: Callable[[dict[str, Any]], bool] = lambda t: True
                     ) -> Callable[[requests.Response], None]:
    def check(response: requests.Response) -> None:
        body = response.json()
        assert_shape(body, seed_json("GET /periodic-threads", "**Example Response**:"))
        assert all(predicate(t) for t in body["threads"])
    return check


def check_one_thread(response: requests.Response) -> None:
    seed = seed_json("GET /periodic-threads", "**Example Response**:")["threads"][0]
    assert_shape(response.json(), seed)
    assert response.json()["name"] == "heartbeat"


def check_healthy(response: requests.Response) -> None:
    seed = seed_json("GET /periodic-threads-health", "**Example Response** (healthy):")
    body = response.json()
    assert {key: body[key] for key in seed} == seed


def check_script(response: requests.Response) -> None:
    assert response.text == seed_text("POST /run_script", "**Example Response**:")


TEXT_TYPE, JSON_TYPE = "text/plain", "application/json"
# every curl example of the seed: (status, content type, body check)
CURL_EXAMPLES: dict[str, tuple[int, str, Callable[[requests.Response], None]]] = {
    f"curl {HOST}/env": (200, JSON_TYPE, check_env),
    f"curl {HOST}/loglevel": (200, TEXT_TYPE, check_loglevel_list),
    f'curl "{HOST}/loglevel?logger_name=lmcache.v1.cache_engine"': (
        200, TEXT_TYPE, exact_text("GET /loglevel", "**Example Response** (get):")),
    f'curl "{HOST}/loglevel?logger_name=lmcache.v1.cache_engine&level=DEBUG"': (
        200, TEXT_TYPE, exact_text("GET /loglevel", "**Example Response** (set):")),
    f"curl {HOST}/metrics": (200, TEXT_TYPE, check_metrics),
    f"curl -X POST {HOST}/metrics/reset": (200, TEXT_TYPE, check_reset),
    f"curl {HOST}/threads": (200, TEXT_TYPE, check_thread_dump),
    f'curl "{HOST}/threads?name=api-server"': (200, TEXT_TYPE, check_thread_dump),
    f'curl "{HOST}/threads?thread_id=12345"': (200, TEXT_TYPE, check_thread_dump),
    f"curl {HOST}/periodic-threads": (200, JSON_TYPE, periodic_listing()),
    f'curl "{HOST}/periodic-threads?level=critical"': (
        200, JSON_TYPE, periodic_listing(lambda t: t["level"] == "critical")),
    f'curl "{HOST}/periodic-threads?running_only=true"': (
        200, JSON_TYPE, periodic_listing(lambda t: t["is_running"])),
    f"curl {HOST}/periodic-threads/heartbeat": (200, JSON_TYPE, check_one_thread),
    f"curl {HOST}/periodic-threads-health": (200, JSON_TYPE, check_healthy),
    f'curl -X POST {HOST}/run_script -F "script=@/path/to/scratch.py"': (
        200, TEXT_TYPE, check_script),
}


def seed_script() -> bytes:
    return seed_block("POST /run_script", "**Example Script** (``scratch.py``):").text.encode()


def send(server: LiveServer, curl: Curl) -> requests.Response:
    if curl.method == "POST":
        files = {"script": ("scratch.py", seed_script())} if curl.form_file else None
        return server.post(curl.path, files=files)
    assert curl.method == "GET"
    return server.get(curl.path)


@pytest.fixture(scope="module")
def demo_ran(live_server: LiveServer) -> LiveServer:
    """The demo server once each of its periodic threads has run in every worker."""
    def all_ran() -> bool:
        threads = live_server.get("/periodic-threads").json()["threads"]
        return len(threads) == 4 * WORKERS and all(t["total_runs"] >= 1 for t in threads)

    wait_until(all_ran, 20, message="every demo thread's first run")
    return live_server


def test_the_seed_examples_are_the_ones_checked_here() -> None:
    assert seed_curls() == list(CURL_EXAMPLES)


@pytest.mark.parametrize("command", list(CURL_EXAMPLES))
def test_every_curl_example_of_the_seed_answers_as_the_seed_shows(
        demo_ran: LiveServer, command: str) -> None:
    status, content_type, check = CURL_EXAMPLES[command]
    curl = parse_curl(command)
    try:
        response = send(demo_ran, curl)
        assert (response.status_code, media_type(response)) == (status, content_type), (
            response.text[:300])
        check(response)
    finally:
        if "level=DEBUG" in command:  # leave the seed's level for the other examples
            restore = demo_ran.get("/loglevel", params={"logger_name": "lmcache.v1.cache_engine",
                                                        "level": "WARNING"})
            assert restore.status_code == 200


# every "Error Response" block of the seed: the request that shows it, or why it cannot be
# shown on the demo
ERROR_EXAMPLES: dict[tuple[str, str], tuple[str, str, dict[str, Any]] | str] = {
    ("GET /loglevel", "**Error Response** (invalid level, HTTP 400):"): (
        "GET", "/loglevel", {"params": {"logger_name": "lmcache.v1.cache_engine",
                                        "level": "INVALID_LEVEL"}}),
    ("GET /periodic-threads", "**Error Response** (invalid level, HTTP 400):"): (
        "GET", "/periodic-threads", {"params": {"level": "unknown"}}),
    ("GET /periodic-threads/{thread_name}", "**Error Response** (not found, HTTP 404):"): (
        "GET", "/periodic-threads/heartbeat", {}),
    ("POST /run_script", "**Error Response** (no script, HTTP 400):"): (
        "POST", "/run_script", {}),
    ("POST /run_script", "**Error Response** (execution error, HTTP 500):"): (
        "POST", "/run_script", {"files": {"script": ("scratch.py", b"import os\n")}}),
}


def seed_error_blocks() -> list[SeedBlock]:
    return [b for b in seed_blocks() if b.label.startswith("**Error Response**")]


def test_every_error_example_of_the_seed_is_checked() -> None:
    assert {(b.section, b.label) for b in seed_error_blocks()} == set(ERROR_EXAMPLES)


@pytest.mark.parametrize("key", list(ERROR_EXAMPLES), ids=lambda key: f"{key[0]} {key[1]}")
def test_every_error_example_of_the_seed_answers_as_the_seed_shows(
        demo_ran: LiveServer, key: tuple[str, str]) -> None:
    block = seed_block(*key)
    method, path, kwargs = ERROR_EXAMPLES[key]  # type: ignore[misc]
    status = int(key[1].rsplit("HTTP ", 1)[1].rstrip("):"))
    if key[0] == "GET /periodic-threads/{thread_name}":
        # the seed's own name is a running thread of the demo: ask for one that is not
        path = "/periodic-threads/no-such-thread"
        expected_text = block.text.replace("heartbeat", "no-such-thread")
    else:
        expected_text = block.text
    response = (demo_ran.get if method == "GET" else demo_ran.post)(path, **kwargs)
    assert response.status_code == status
    if block.language == "json":
        assert media_type(response) == JSON_TYPE and response.json() == json.loads(expected_text)
    else:
        assert media_type(response) == TEXT_TYPE and response.text == expected_text


def test_periodic_thread_status_follows_lmcache_s_conventions(demo_ran: LiveServer) -> None:
    """success_rate is a percentage and last_summary has LMCache's keys, over HTTP too; the
    subclass-form thread (cache-sweeper) reports its extra_info."""
    threads = demo_ran.get("/periodic-threads").json()["threads"]
    for thread in threads:
        assert thread["success_rate"] == 100.0, thread  # the demo's runs all succeed
        summary = thread["last_summary"]
        assert set(summary) == {"timestamp", "duration_ms", "success", "message", "extra_info"}
        ran_at = datetime.fromisoformat(thread["last_run_time"]).timestamp()
        assert summary["timestamp"] >= ran_at - 1e-3 and summary["duration_ms"] >= 0
    sweeper = demo_ran.get("/periodic-threads/cache-sweeper").json()
    assert sweeper["level"] == "medium"
    assert set(sweeper["last_summary"]["extra_info"]) == {"evicted", "entries"}


UNHEALTHY_APP_DIR = Path(__file__).resolve().parent / "client"  # unhealthy_app.py


def test_the_seed_s_unhealthy_health_example_answers_as_the_seed_shows(
        start_server: Callable[..., LiveServer]) -> None:
    """The one example the healthy demo cannot show: a component whose critical thread has
    stopped (tests/client/unhealthy_app.py) answers the seed's unhealthy body, with 503."""
    path = os.pathsep.join(filter(None, [str(UNHEALTHY_APP_DIR), os.environ.get("PYTHONPATH")]))
    server = start_server("--app", "unhealthy_app:app", "--workers", "1",
                          env={"PYTHONPATH": path})
    seed = seed_json("GET /periodic-threads-health", "**Example Response** (unhealthy):")

    def unhealthy() -> list[requests.Response]:  # (a 503 Response is falsy itself)
        response = server.get("/periodic-threads-health")
        return [response] if response.status_code == 503 else []

    (response,) = wait_until(unhealthy, 20, message="the doomed thread to stop")
    assert media_type(response) == JSON_TYPE
    body = response.json()
    assert_shape(body, seed)
    assert (body["healthy"], body["unhealthy_count"]) == (False, 1)
    assert (body["unhealthy_threads"][0]["name"], body["unhealthy_threads"][0]["level"]) == (
        "doomed", "critical")


# the seed's example bodies, and the test above that answers each
EXAMPLE_BODIES = {
    ("GET /env", "**Example Response**:"): "check_env",
    ("GET /loglevel", "**Example Response** (list all):"): "check_loglevel_list",
    ("GET /loglevel", "**Example Response** (get):"): "exact_text",
    ("GET /loglevel", "**Example Response** (set):"): "exact_text",
    ("GET /periodic-threads", "**Example Response**:"): "periodic_listing, check_one_thread",
    ("GET /periodic-threads-health", "**Example Response** (healthy):"): "check_healthy",
    ("GET /periodic-threads-health", "**Example Response** (unhealthy):"):
        "test_the_seed_s_unhealthy_health_example_answers_as_the_seed_shows",
    ("POST /run_script", "**Example Script** (``scratch.py``):"): "seed_script",
    ("POST /run_script", "**Example Response**:"): "check_script",
}


def test_every_example_body_of_the_seed_is_checked() -> None:
    shown = {(b.section, b.label) for b in seed_blocks()
             if b.language != "bash" and not b.label.startswith("**Error Response**")}
    assert shown == set(EXAMPLE_BODIES)
