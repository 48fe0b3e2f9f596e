"""The operator's page (``GET /ui``): one self-contained HTML document, with its style and
script inline, that drives the JSON endpoints from the browser.

The page holds no data of the component: it is read from the package once per process and
only the component's name and common_api's version are filled in. Everything it shows it
fetches, same-origin, from the endpoints beside it, under the server's access policy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from importlib import resources

# The page may talk to its own origin only and load nothing from anywhere. Its one inline
# style and one inline script are its whole code, allowed by their SHA-256 (so markup
# injected into the page, were any, could run nothing). No framing, no referrer, no form
# posts elsewhere.
_POLICY = ("default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@functools.cache
def _template() -> str:
    return resources.files(__package__).joinpath("index.html").read_text(encoding="utf-8")


def inline_hash(page: str, tag: str) -> str:
    """The CSP source for the one inline ``<tag>`` element of ``page``: its content's
    SHA-256, as the browser computes it (the exact characters between the tags)."""
    start = page.index(f"<{tag}>") + len(tag) + 2
    content = page[start:page.index(f"</{tag}>", start)]
    digest = hashlib.sha256(content.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


CONTENT_SECURITY_POLICY = _POLICY.format(script=inline_hash(_template(), "script"),
                                         style=inline_hash(_template(), "style"))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HTML = "text/html; charset=utf-8"


@functools.lru_cache(maxsize=8)
def render_page(component: str, version: str, scripts: bool = False) -> bytes:
    """The page for one component, encoded; cached, so serving it costs a lookup. Its
    script panel is hidden unless the component serves /run_script (``scripts``)."""
    return (_template().replace("__COMPONENT__", html.escape(component, quote=True))
            .replace("__VERSION__", html.escape(version, quote=True))
            .replace("__SCRIPT_HIDDEN__", "" if scripts else " hidden").encode("utf-8"))
