"""The SVG flame graph: one element per frame with its title, self-contained, and working
in a real browser (Debian's chromium, headless)."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from common_api.services.flamegraph import render_svg
from common_api.services.sampling import Frame, Profile

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = next((path for name in ("chromium", "chromium-browser")
                 if (path := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")


def _profile() -> Profile:
    frames = [Frame("MainThread", kind="thread"), Frame("app:serve", "/a.py", 1),
              Frame("app:parse_request", "/a.py", 5), Frame("app:render<&>", "/a.py", 9),
              Frame("worker-1", kind="thread"), Frame("jobs:spin_forever", "/b.py", 2)]
    return Profile(frames, {(0, 1, 2): 30, (0, 1, 3): 10, (0, 1): 10, (4, 5): 50}, 1.0, 100,
                   100, 0.0)


def _frames(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg.encode())
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").split()[:1] == ["frame"]]


def test_one_element_per_frame_each_with_its_title() -> None:
    frames = _frames(render_svg(_profile(), "title"))
    titles = [g.find(f"{SVG}title").text for g in frames]  # type: ignore[union-attr]
    assert sorted(titles) == sorted([
        "all (100 samples, 100.00%)", "MainThread (50 samples, 50.00%)",
        "app:serve (50 samples, 50.00%)", "app:parse_request (30 samples, 30.00%)",
        "app:render<&> (10 samples, 10.00%)", "worker-1 (50 samples, 50.00%)",
        "jobs:spin_forever (50 samples, 50.00%)"])
    widths = {g.get("data-n"): float(g.find(f"{SVG}rect").get("width")) for g in frames}  # type: ignore[union-attr, arg-type]
    assert widths["app:parse_request"] == pytest.approx(3 * widths["app:render<&>"], rel=0.02)


def test_the_svg_uses_no_external_asset() -> None:
    svg = render_svg(_profile(), "title")
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", svg))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "href" not in svg and "@import" not in svg


def _browser(tmp_path: Path, svg: str, fragment: str) -> str:
    page = tmp_path / "flame.svg"
    page.write_text(svg)
    run = subprocess.run(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         f"{page.as_uri()}#{fragment}"],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@needs_chromium
def test_the_flame_graph_renders_searches_and_zooms_in_a_real_browser(tmp_path: Path) -> None:
    svg = render_svg(_profile(), "title")
    ids = {g.get("data-n"): g.get("id") for g in _frames(svg)}
    dom = _browser(tmp_path, svg, f"search=spin&zoom={ids['app:serve']}")
    root = ET.fromstring(dom.encode())
    assert root.get("data-ready") == "true"  # the script ran to the end
    frames = {g.get("data-n"): g for g in _frames(dom)}
    assert len(frames) == 7
    classes = {name: set(g.get("class", "").split()) for name, g in frames.items()}
    assert classes["jobs:spin_forever"] >= {"match"}
    assert not any("match" in c for name, c in classes.items() if "spin" not in name)
    matched = next(t for t in root.iter(f"{SVG}text") if t.get("id") == "matched")
    assert matched.text == "Matched: 50.00%"
    # zoomed into app:serve: it and its callees fill the width, its callers dim, the rest hide
    assert "hide" in classes["worker-1"] and "hide" in classes["jobs:spin_forever"]
    assert "parent" in classes["MainThread"]
    serve = frames["app:serve"].find(f"{SVG}rect")
    assert float(serve.get("width")) > 1100  # type: ignore[union-attr, arg-type]
    parse = frames["app:parse_request"].find(f"{SVG}rect")
    assert float(parse.get("width")) == pytest.approx(0.6 * 1180, abs=2)  # type: ignore[union-attr, arg-type]


@needs_chromium
def test_the_flame_graph_draws_pixels_in_a_real_browser(tmp_path: Path) -> None:
    page = tmp_path / "flame.svg"
    page.write_text(render_svg(_profile(), "title"))
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,300", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 5000  # a blank page compresses to far less
