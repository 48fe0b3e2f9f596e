"""The operator's page in a real browser: Debian's headless Chromium, driven by Playwright,
against real ``common-api serve`` processes (the demo with two workers; a component under
``/ops`` with a token whose critical thread can be stalled)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import LiveServer, running_server, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
# slow, and the same on every pin of gunicorn and prometheus_client: tox.ini runs it in
# the py311, py313 and min envs only
pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="chromium not installed (Debian: apt-get install chromium)"),
]

expect = playwright_api.expect
expect.set_options(timeout=30_000)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
APP_DIR = Path(__file__).resolve().parent  # stall_app.py
TOKEN = "ui-test-token"
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        # Playwright gives every launch a fresh, temporary --user-data-dir of its own
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("demo"), "--workers", "2") as server:
        yield server


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """The stall app under /ops with a token; yields it and its stall file."""
    directory = tmp_path_factory.mktemp("guarded")
    stall = directory / "stall"
    path = os.pathsep.join(filter(None, [str(APP_DIR), os.environ.get("PYTHONPATH")]))
    with running_server(directory, "--app", "stall_app:app", "--workers", "1",
                        env={"PYTHONPATH": path, "STALL_FILE": str(stall),
                             "COMMON_API_TOKEN": TOKEN},
                        ready_path="/ops/metrics",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as server:
        try:
            yield server, stall
        finally:
            stall.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def async_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two workers, each running the issue 21 storage loop (``tests/apps/async_host.py``)."""
    tests = APP_DIR.parent
    path = os.pathsep.join(filter(None, [str(tests / "apps"), str(tests),
                                         os.environ.get("PYTHONPATH")]))
    with running_server(tmp_path_factory.mktemp("async"), "--app", "async_host:app",
                        "--workers", "2", env={"PYTHONPATH": path}) as server:
        yield server


class Tab:
    """A fresh browser context and page, recording console errors and every request."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(DEADLINE_MS)
        self.errors: list[str] = []
        self.requests: list[Any] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text)
                     if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda req: self.requests.append(req))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser)
    try:
        yield opened
    finally:
        opened.close()


def worker_pids(server: LiveServer) -> set[int]:
    threads = server.get("/periodic-threads").json()["threads"]
    return {entry["pid"] for entry in threads}


def test_the_page_s_own_code_runs_and_code_injected_into_it_does_not(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    expect(page.locator("#health")).to_contain_text("HEALTHY")  # its script ran
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != ""
    assert not tab.errors, tab.errors  # its style and script were allowed
    # markup that got into the page (the way an injection would) runs nothing
    page.evaluate("""() => {
        const inline = document.createElement("script");
        inline.textContent = "window.injected = 'inline'";
        document.body.append(inline);
        const div = document.createElement("div");
        div.innerHTML = '<img src="x" onerror="window.injected = \\'handler\\'">';
        document.body.append(div);
    }""")
    wait_until(lambda: any("Content Security Policy" in error for error in tab.errors), 10,
               message="the browser reporting the refused script")
    assert page.evaluate("window.injected === undefined")


def test_page_shows_the_demo_s_threads_and_health_without_console_errors(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    expect(page.locator("#health")).to_contain_text("HEALTHY")
    assert page.inner_text("#component") == "common_api.demo"
    wait_until(lambda: page.inner_text("#workers") == "2", 30, message="two workers shown")
    rows = page.locator("#pt-rows tr")
    wait_until(lambda: rows.count() == 2 * 4, 30, message="4 demo threads of 2 workers")
    names = set(page.locator("#pt-rows tr td:nth-child(2)").all_inner_texts())
    assert names == {"heartbeat", "stats-collector", "usage-reporter", "cache-sweeper"}
    assert page.inner_text("#last-refresh") != "never"
    page.select_option("#pt-level", "critical")
    page.fill("#pt-name", "heart")
    assert page.locator("#pt-rows tr").count() == 2
    assert set(page.locator("#pt-rows tr td:nth-child(3)").all_inner_texts()) == {"critical"}
    first = page.locator("#pt-rows td.ago").first
    before = first.inner_text()
    wait_until(lambda: first.inner_text() != before, 10, message="last run ago to move")
    assert tab.errors == []
    foreign = [r.url for r in tab.requests if not r.url.startswith(demo.url + "/")]
    assert foreign == []  # nothing fetched from anywhere but the component


def test_a_level_set_on_the_page_is_reported_by_every_worker(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    page.wait_for_selector("#ll-rows tr")
    page.fill("#ll-filter", "demo.cache")
    assert page.locator("#ll-rows tr").count() == 1
    page.fill("#ll-logger", "demo.cache")
    page.select_option("#ll-level", "DEBUG")
    page.select_option("#ll-duration", "")  # for good
    page.click("#ll-form button[type=submit]")
    expect(page.locator("#ll-answer")).to_contain_text(re.compile(r"^200"))
    assert '"level": "DEBUG"' in page.inner_text("#ll-answer")
    expect(page.locator("#ll-rows tr td:nth-child(2)")).to_have_text("DEBUG")
    pids = worker_pids(demo)
    seen: dict[int, str] = {}

    def every_worker_reports_debug() -> bool:
        response = demo.get("/loglevel", params={"logger_name": "demo.cache", "format": "json"})
        seen[int(response.headers["X-Worker-Pid"])] = response.json()["level"]
        return set(seen) >= pids and all(level == "DEBUG" for level in seen.values())

    wait_until(every_worker_reports_debug, 30, message=f"DEBUG from workers {pids}: {seen}")
    # a bad level: the server's own words on the page
    page.fill("#ll-logger", "")
    page.fill("#ll-logger", "demo.cache")
    page.locator("#ll-level option").first.evaluate("option => { option.value = 'LOUD'; }")
    page.click("#ll-form button[type=submit]")
    expect(page.locator("#ll-answer")).to_contain_text(re.compile(r"^400"))
    assert "Invalid log level: LOUD" in page.inner_text("#ll-answer")
    demo.get("/loglevel", params={"logger_name": "demo.cache", "level": "NOTSET"})


def test_the_script_panel_is_shown_only_where_run_script_is_on(
        demo: LiveServer, guarded: tuple[LiveServer, Path], tab: Tab) -> None:
    """The demo turns /run_script on; the stall app leaves it off (issue 19)."""
    page = tab.page
    page.goto(demo.url + "/ui")
    expect(page.locator("#script")).to_be_visible()
    expect(page.locator('nav a[href="#script"]')).to_be_visible()
    server, _ = guarded
    page.goto(server.url + "/ops/ui")
    expect(page.locator("#script")).to_be_hidden()
    expect(page.locator('nav a[href="#script"]')).to_be_hidden()
    expect(page.locator("#periodic")).to_be_visible()  # the other panels stay


def test_threads_are_dumped_grouped_for_every_worker_and_expand_to_their_stacks(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    page.fill("#th-name", "heartbeat")
    page.check("#th-all")
    page.click("#th-form button[type=submit]")
    group = page.locator("#th-groups details").first
    group.wait_for()
    assert "every worker" in page.inner_text("#th-count")
    assert "heartbeat@" in page.inner_text("#th-groups summary")
    assert not group.locator("pre").is_visible()
    group.locator("summary").focus()
    page.keyboard.press("Enter")  # keyboard: a group opens to its stack
    assert "_thread.py" in group.locator("pre").inner_text()


def test_tasks_are_listed_grouped_for_every_worker_and_expand_to_their_chains(
        async_host: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(async_host.url + "/ui")
    expect(page.locator('nav a[href="#tasks"]')).to_be_visible()
    page.fill("#tk-name", "fetch-chunk")
    page.check("#tk-all")
    wait_until(lambda: [worker["answered"] for worker in async_host.get(
        "/tasks?scope=all&format=json").json()["workers"]] == [True, True], 30,
        message="both workers answering /tasks")
    page.click("#tk-form button[type=submit]")
    group = page.locator("#tk-groups details").first
    group.wait_for()
    summary = page.inner_text("#tk-groups summary")
    assert summary.startswith("2 \u00d7 fetch_from_remote \u2192 remote_get \u2192 sleep")
    assert "fetch-chunk-42@" in summary
    assert page.inner_text("#tk-count").startswith("2 tasks in 1 groups")
    assert not group.locator("pre").is_visible()
    group.locator("summary").focus()
    page.keyboard.press("Enter")  # keyboard: a group opens to its chain
    chain = group.locator("pre").inner_text()
    assert "asyncio_hosts.py" in chain and "in remote_get" in chain
    assert tab.errors == []


def test_a_script_s_answer_and_a_failing_script_s_error_are_shown_as_the_server_wrote_them(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    page.fill("#sc-text", "print('checking')\nresult = 6 * 7")
    page.click("#sc-form button[type=submit]")
    page.wait_for_selector("#sc-answer:not([hidden])")
    assert page.inner_text("#sc-answer") == "200\nchecking\n42"
    post = next(r for r in tab.requests if r.url.endswith("/run_script"))
    headers = post.all_headers()
    # same-origin: what an Origin / Sec-Fetch-Site guard must let through
    assert (headers.get("origin"), headers.get("sec-fetch-site")) == (demo.url, "same-origin")
    assert "cookie" not in headers
    page.fill("#sc-text", "result = undefined_name")
    page.click("#sc-form button[type=submit]")
    expect(page.locator("#sc-answer")).to_contain_text(re.compile(r"^500"))
    assert ("Error executing script: NameError: name 'undefined_name' is not defined"
            in page.inner_text("#sc-answer"))
    page.click("#sc-rules summary")
    assert "COMMON_API_SCRIPT_ALLOWED_IMPORTS" in page.inner_text("#sc-rules")


def test_the_profile_panel_renders_a_flame_graph_and_offers_the_speedscope_file(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    # asked before the page's own profile starts: one profile at a time per server, so a
    # probe during the page's window could make the page's request the one refused (429)
    has_profile = demo.get("/profile", params={"seconds": "0.05"}).status_code != 404
    page.goto(demo.url + "/ui")
    page.fill("#pf-seconds", "1")
    page.click("#pf-run")
    if not has_profile:
        page.wait_for_selector("#pf-error:not([hidden])")
        assert "no /profile endpoint" in page.inner_text("#pf-error")
        pytest.skip("this server has no /profile (the panel says so)")
    page.wait_for_selector("#flame svg g.frame")
    assert page.locator("#flame svg g.frame").count() > 3
    assert "heartbeat" in page.inner_text("#flame")  # a demo thread's root frame
    with page.expect_download() as download:
        page.click("#pf-download")
    saved = Path(tempfile.mkdtemp()) / "profile.json"
    download.value.save_as(saved)
    assert '"$schema": "https://www.speedscope.app/file-format-schema.json"' in \
        saved.read_text().replace('":"', '": "')


def test_the_profile_panel_shows_the_last_10_minutes_at_once_from_the_history(
        demo: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(demo.url + "/ui")
    expect(page.locator("#health")).to_contain_text("HEALTHY")
    page.click("#pf-history")
    page.wait_for_selector("#flame svg g.frame")
    assert "heartbeat" in page.inner_text("#flame")  # a demo thread's root frame
    expect(page.locator("#pf-status")).to_contain_text("history kept")
    asked = [r.url for r in tab.requests if "/profile?" in r.url]
    assert asked and "last=600" in asked[-1] and "seconds=" not in asked[-1]


def test_the_page_marks_a_logger_the_host_s_logging_config_disabled(
        guarded: tuple[LiveServer, Path], tab: Tab) -> None:
    server, _ = guarded
    listed = server.get("/ops/loglevel", params={"logger_name": "stall_app.cache",
                                                 "format": "json"},
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert listed["disabled"] is True
    page = tab.page
    page.goto(server.url + "/ops/ui")
    page.wait_for_selector("#token-form.shown")
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    page.wait_for_selector("#ll-rows tr")
    page.fill("#ll-filter", "stall_app.cache")
    expect(page.locator("#ll-rows tr td:nth-child(2)")).to_have_text("NOTSET (disabled)")
    page.fill("#ll-filter", "common_api.audit")
    expect(page.locator("#ll-rows tr")).to_have_count(1)
    expect(page.locator("#ll-rows tr td:nth-child(2)")).not_to_contain_text("disabled")


def test_with_a_token_under_a_prefix_the_page_asks_once_then_turns_unhealthy_and_down(
        guarded: tuple[LiveServer, Path], tab: Tab) -> None:
    server, stall = guarded
    page = tab.page
    page.goto(server.url + "/ops/ui")
    page.wait_for_selector("#token-form.shown")
    assert "Missing bearer token" in page.inner_text("#auth")
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    expect(page.locator("#health")).to_contain_text("HEALTHY")
    assert page.evaluate("sessionStorage.getItem('common_api_token')") == TOKEN
    assert tab.context.cookies() == []
    wait_until(lambda: page.locator("#pt-rows tr").count() == 2, 30, message="two threads")
    api = [r for r in tab.requests if "/ops/periodic-threads" in r.url]
    assert api and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api[-2:])

    stall.touch()
    expect(page.locator("#health")).to_contain_text("UNHEALTHY")
    reason = page.inner_text("#unhealthy-list")
    assert "pacemaker@" in reason and "no run within 3 intervals" in reason
    marked = page.locator("#pt-rows tr.unhealthy")
    assert marked.count() == 1 and "✖" in marked.inner_text()  # not by colour alone
    # where it is stuck, innermost last, under its row
    stuck = page.locator("#pt-rows tr.unhealthy + tr.stalled-stack")
    expect(stuck).to_contain_text("stall_app:wait_on_downstream (")
    frames = [line.split(" (")[0] for line in stuck.locator("pre").inner_text().splitlines()]
    at = frames.index("stall_app:wait_on_downstream")
    assert frames[at - 1] == "stall_app:sync_with_controller", frames
    assert "its run began" in stuck.inner_text()

    stall.unlink()
    server.stop()
    expect(page.locator("#health")).to_contain_text("NOT ANSWERING")
    assert "not answering" in page.inner_text("#conn")
    with pytest.raises(requests.ConnectionError):
        server.get("/ops/ui", timeout=2)


def test_the_page_follows_the_browser_s_light_or_dark_preference(
        demo: LiveServer, browser: Any) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        try:
            page = context.new_page()
            page.goto(demo.url + "/ui")
            colours[scheme] = page.locator("body").evaluate(
                "body => getComputedStyle(body).backgroundColor")
        finally:
            context.close()
    assert colours == {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}
