"""Take docs/ui.png: the operator's page (GET /ui) on the bundled demo, in headless Chromium.

    python docs/screenshot_ui.py [--out docs/ui.png] [--profile]

Starts ``common-api serve --workers 2`` (the demo) on a free loopback port, opens /ui,
sets one logger to DEBUG for 5 minutes (so a pending revert shows), dumps the threads,
optionally runs a 3 s profile (when the server has /profile), and saves a screenshot of
the whole page. Needs Debian's chromium and the test extra (Playwright); downloads nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if requests.get(url + "/periodic-threads-health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the demo at {url} did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "ui.png"))
    parser.add_argument("--profile", action="store_true", help="also run a 3 s profile")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMMON_API_")}
    server = subprocess.Popen([sys.executable, "-m", "common_api.cli", "serve", "--workers", "2",
                               "--bind", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_ready(url)
        for _ in range(20):
            requests.get(url + "/work", timeout=5)
        time.sleep(4)  # a few runs of every demo thread
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/ui")
            page.wait_for_selector("#pt-rows tr")
            page.fill("#ll-logger", "demo.cache")
            page.select_option("#ll-level", "DEBUG")
            page.click("#ll-form button[type=submit]")
            page.wait_for_selector("#ll-answer:not([hidden])")
            page.fill("#ll-filter", "demo")
            page.fill("#th-name", "heartbeat")
            page.click("#th-form button[type=submit]")
            page.wait_for_selector("#th-groups details")
            page.click("#th-groups details summary")
            if args.profile:
                page.fill("#pf-seconds", "3")
                page.click("#pf-run")
                page.wait_for_selector("#flame svg g.frame, #pf-error:not([hidden])",
                                       timeout=60_000)
            page.wait_for_timeout(3500)  # one more refresh of the overview
            height = page.evaluate("document.documentElement.scrollHeight")
            page.set_viewport_size({"width": 1400, "height": height})  # sticky header on top
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=args.out)
            browser.close()
        requests.get(url + "/loglevel", params={"logger_name": "demo.cache", "level": "NOTSET"},
                     timeout=5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
