"""The operator's page (``GET /ui``): one self-contained HTML document, with its style and
script inline, that drives the JSON endpoints from the browser.

The page holds no data of the component: it is read from the package once per process and
only the component's name and common_api's version are filled in. Everything it shows it
fetches, same-origin, from the endpoints beside it, under the server's access policy.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

# The page may talk to its own origin only and load nothing from anywhere; its inline
# style and script are its whole code. No framing, no referrer, no form posts elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HTML = "text/html; charset=utf-8"


@functools.cache
def _template() -> str:
    return resources.files(__package__).joinpath("index.html").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=8)
def render_page(component: str, version: str) -> bytes:
    """The page for one component, encoded; cached, so serving it costs a lookup."""
    return (_template().replace("__COMPONENT__", html.escape(component, quote=True))
            .replace("__VERSION__", html.escape(version, quote=True)).encode("utf-8"))
