"""A profile as a self-contained, interactive SVG flame graph.

One ``<g class="frame">`` per node of the merged call tree, each with a ``<title>`` (frame,
samples, percentage), placed statically so the picture shows where scripts do not run
(an ``<img>`` in a README). Where scripts run, the embedded script adds: hover shows the
frame in the details line, click zooms into a frame, Search (or ``#search=REGEX`` in the
URL) highlights matching frames and says what share of samples they cover; ``#zoom=ID``
opens zoomed. No external assets: fonts are generic, the script and style are inline.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from common_api.services.sampling import Profile

WIDTH = 1200
PAD = 10
ROW = 16
TOP = 36
BOTTOM = 28
CHAR_WIDTH = 7.0
MIN_PIXELS = 0.1
KIND_COLOURS = {"all": "rgb(200,200,200)", "worker": "rgb(150,190,230)",
                "thread": "rgb(190,210,190)", "truncated": "rgb(170,170,170)"}


@dataclass
class _Node:
    name: str
    kind: str
    total: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(profile: Profile) -> _Node:
    root = _Node("all", "all")
    for stack, count in profile.stacks.items():
        root.total += count
        node = root
        for index in stack:
            frame = profile.frames[index]
            child = node.children.get(frame.name)
            if child is None:
                child = node.children[frame.name] = _Node(frame.name, frame.kind)
            child.total += count
            node = child
    return root


def _colour(node: _Node) -> str:
    if node.kind in KIND_COLOURS:
        return KIND_COLOURS[node.kind]
    h = zlib.crc32(node.name.encode("utf-8", "replace"))
    return f"rgb({205 + h % 50},{(h >> 8) % 180 + 40},{(h >> 16) % 55})"


def _fit(name: str, pixels: float) -> str:
    chars = int((pixels - 6) / CHAR_WIDTH)
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[:chars - 2] + ".."


def render_svg(profile: Profile, title: str) -> str:
    """The flame graph of ``profile`` (root at the bottom, widths by samples)."""
    root = _tree(profile)
    total = max(root.total, 1)
    span = WIDTH - 2 * PAD
    placed: list[tuple[_Node, float, float, int]] = []
    omitted = 0

    def walk(node: _Node, x: float, depth: int) -> None:
        nonlocal omitted
        placed.append((node, x, node.total / total, depth))
        offset = x
        for name in sorted(node.children):
            child = node.children[name]
            width = child.total / total
            if width * span >= MIN_PIXELS:
                walk(child, offset, depth + 1)
            else:
                omitted += 1
            offset += width

    walk(root, 0.0, 0)
    depth = max(d for _, _, _, d in placed) + 1
    height = TOP + depth * ROW + BOTTOM
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="monospace" '
        f'font-size="12" data-total="{root.total}">',
        f"<style>{_STYLE}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="rgb(248,248,244)"/>',
        f'<text id="heading" x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="15">'
        f"{escape(title)}</text>",
        f'<text id="reset" class="button hide" x="{PAD}" y="20">Reset zoom</text>',
        f'<text id="search" class="button" x="{WIDTH - PAD}" y="20" '
        'text-anchor="end">Search</text>',
        f'<text id="matched" x="{WIDTH - PAD}" y="{height - 10}" text-anchor="end"> </text>',
        f'<text id="details" x="{PAD}" y="{height - 10}"> </text>',
        '<g id="frames">',
    ]
    for number, (node, x, width, d) in enumerate(placed):
        share = 100.0 * node.total / total
        label = f"{node.name} ({node.total} samples, {share:.2f}%)"
        px, pw = PAD + x * span, width * span
        y = height - BOTTOM - (d + 1) * ROW
        parts.append(
            f'<g class="frame" id="f{number}" data-x="{x:.9f}" data-w="{width:.9f}" '
            f'data-d="{d}" data-n={quoteattr(node.name)}><title>{escape(label)}</title>'
            f'<rect x="{px:.2f}" y="{y}" width="{max(pw - 0.5, 0.1):.2f}" '
            f'height="{ROW - 1}" rx="2" fill="{_colour(node)}"/>'
            f'<text x="{px + 3:.2f}" y="{y + ROW - 4}">{escape(_fit(node.name, pw))}</text></g>')
    parts.append("</g>")
    if omitted:
        parts.append(f'<text x="{WIDTH / 2}" y="{height - 10}" text-anchor="middle" '
                     f'fill="rgb(120,120,120)">{omitted} frames narrower than {MIN_PIXELS} px '
                     "not drawn</text>")
    parts.append(f"<script><![CDATA[{_SCRIPT}]]></script></svg>")
    return "\n".join(parts) + "\n"


_STYLE = (
    "g.frame rect{stroke:rgb(248,248,244);stroke-width:0.5}"
    "g.frame:hover rect{stroke:black;stroke-width:1}"
    "g.frame text{pointer-events:none;fill:black}"
    "g.frame{cursor:pointer}.hide{display:none}"
    "g.match rect{fill:rgb(230,0,230)}g.parent rect{opacity:0.5}"
    ".button{cursor:pointer;fill:rgb(40,80,160)}"
)

_SCRIPT = r"""
(function () {
  var W = @WIDTH@, PAD = @PAD@, CW = @CHAR@, span = W - 2 * PAD;
  var root = document.documentElement;
  var frames = Array.prototype.slice.call(document.querySelectorAll("g.frame"));
  var details = document.getElementById("details");
  var matched = document.getElementById("matched");
  var reset = document.getElementById("reset");
  var term = "";
  function num(g, key) { return parseFloat(g.getAttribute("data-" + key)); }
  function fit(name, px) {
    var n = Math.floor((px - 6) / CW);
    if (n < 3) return "";
    return name.length <= n ? name : name.slice(0, n - 2) + "..";
  }
  function place(g, x, w) {
    var r = g.querySelector("rect"), t = g.querySelector("text");
    r.setAttribute("x", (PAD + x * span).toFixed(2));
    r.setAttribute("width", Math.max(w * span - 0.5, 0.1).toFixed(2));
    t.setAttribute("x", (PAD + x * span + 3).toFixed(2));
    t.textContent = fit(g.getAttribute("data-n"), w * span);
  }
  function zoom(g) {
    var x0 = num(g, "x"), w0 = num(g, "w"), d0 = num(g, "d"), eps = 1e-9;
    frames.forEach(function (f) {
      var x = num(f, "x"), w = num(f, "w"), d = num(f, "d");
      if (d >= d0 && x >= x0 - eps && x + w <= x0 + w0 + eps) {
        f.classList.remove("hide"); f.classList.remove("parent");
        place(f, (x - x0) / w0, w / w0);
      } else if (d < d0 && x <= x0 + eps && x + w >= x0 + w0 - eps) {
        f.classList.remove("hide"); f.classList.add("parent"); place(f, 0, 1);
      } else {
        f.classList.add("hide");
      }
    });
    reset.classList.toggle("hide", d0 === 0);
    root.setAttribute("data-zoomed", g.id);
  }
  function search(text) {
    term = text || "";
    var re = null;
    try { re = new RegExp(term, "i"); } catch (e) { re = null; }
    var spans = [];
    frames.forEach(function (f) {
      var name = f.getAttribute("data-n");
      var hit = term !== "" && (re ? re.test(name) : name.indexOf(term) >= 0);
      f.classList.toggle("match", hit);
      if (hit) spans.push([num(f, "x"), num(f, "x") + num(f, "w")]);
    });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -1;
    spans.forEach(function (s) {
      if (s[1] <= end) return;
      covered += s[1] - Math.max(s[0], end); end = s[1];
    });
    matched.textContent = term ? "Matched: " + (100 * covered).toFixed(2) + "%" : " ";
    root.setAttribute("data-search", term);
  }
  frames.forEach(function (f) {
    f.addEventListener("click", function () { zoom(f); });
    f.addEventListener("mouseover", function () {
      details.textContent = f.querySelector("title").textContent;
    });
    f.addEventListener("mouseout", function () { details.textContent = " "; });
  });
  reset.addEventListener("click", function () { zoom(frames[0]); });
  document.getElementById("search").addEventListener("click", function () {
    var text = window.prompt("Search frames (regular expression, any case)", term);
    if (text !== null) search(text);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { zoom(frames[0]); search(""); }
  });
  var hash = {};
  (window.location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
    var i = kv.indexOf("=");
    if (i > 0) hash[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1));
  });
  if (hash.zoom && document.getElementById(hash.zoom)) zoom(document.getElementById(hash.zoom));
  if (hash.search) search(hash.search);
  root.setAttribute("data-ready", "true");
})();
""".replace("@WIDTH@", str(WIDTH)).replace("@PAD@", str(PAD)).replace("@CHAR@", str(CHAR_WIDTH))
