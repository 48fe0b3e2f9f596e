"""Who may call what: bearer token when one is configured, local programs otherwise.

With a token, every request must carry ``Authorization: Bearer <token>`` (compared in
constant time); the health endpoint may be left open for probes. Without one, the
endpoints that change state or reveal the environment answer local programs only:

- the socket's peer address is loopback, and no forwarding header (``Forwarded``,
  ``X-Forwarded-For``, ``X-Real-IP``, ``X-Forwarded-Host``) says the request came through
  a proxy, whose own loopback address says nothing about the real client;
- the request is addressed to a loopback name (``localhost``, a loopback IP literal, or a
  host the operator allowed), so a DNS-rebinding page, whose requests carry its own name
  in ``Host``, is refused;
- nothing says a web page sent it: a browser marks a request a page makes with the page's
  ``Origin`` (every POST), ``Sec-Fetch-Site`` (every request of current browsers) and
  usually ``Referer``; any of them naming another site refuses the request. Browsers never
  send a bearer token on their own, so a token holder may call from anywhere.

Headers can only narrow this rule, never widen it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from common_api.errors import Forbidden, Unauthorized
from common_api.host_names import split_host

FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Host")
REMOTE_USE_HINT = (
    "This endpoint answers loopback clients only. To use it remotely, set "
    "COMMON_API_TOKEN on the server and send 'Authorization: Bearer <token>'."
)
PROXIED_HINT = (
    "This endpoint answers local clients only and this request came through a proxy. "
    "Set COMMON_API_TOKEN on the server and send 'Authorization: Bearer <token>'."
)
LOOPBACK_OFF_HINT = (
    "This endpoint is turned off: COMMON_API_TRUST_LOOPBACK is false and no "
    "COMMON_API_TOKEN is set."
)
BROWSER_HINT = (
    "Without a token this endpoint answers local programs, not web pages. Call it without "
    "Origin, Sec-Fetch-Site and Referer headers (as curl does), or set COMMON_API_TOKEN and "
    "send 'Authorization: Bearer <token>'."
)
LOOPBACK_NAMES = frozenset({"localhost"})
# the values of Sec-Fetch-Site that say no other site caused the request
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


_FORWARDING = frozenset(name.lower() for name in FORWARDING_HEADERS)


def is_proxied(header_names: Iterable[str]) -> bool:
    """True when any forwarding header is present (names in any case)."""
    return any(name.lower() in _FORWARDING for name in header_names)


def _origin_of(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an absolute http(s) URL, the port made explicit."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().removesuffix("."), port or _DEFAULT_PORTS[scheme]


def token_fingerprint(token: str | None) -> str | None:
    """A short, non-reversible name for a token, fit for logs."""
    if not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


@dataclass(frozen=True)
class Caller:
    """What a request says about who sent it and how (header values as sent, or None)."""

    remote_addr: str | None
    authorization: str | None = None
    host: str | None = None
    scheme: str = "http"
    origin: str | None = None
    fetch_site: str | None = None
    referer: str | None = None
    proxied: bool = False

    def own_origin(self) -> tuple[str, str, int | None] | None:
        """The origin this request was addressed to, from its scheme and ``Host``."""
        return _origin_of(f"{self.scheme}://{self.host}") if self.host else None


class AccessPolicy:
    """Decides whether a request may proceed; raises Unauthorized or Forbidden if not."""

    def __init__(self, token: str | None, trust_loopback: bool = True,
                 public_health: bool = False, allowed_hosts: Iterable[str] = ()) -> None:
        self._token = token.encode() if token else None
        self._trust_loopback = trust_loopback
        self._public_health = public_health
        self._allowed_hosts: list[tuple[str, int | None]] = []
        for entry in allowed_hosts:
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"not a host name: {entry!r}")
            self._allowed_hosts.append(parsed)

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def check(self, caller: Caller, *, guarded: bool, health: bool = False) -> None:
        if self._token is not None:
            if health and self._public_health:
                return
            presented = bearer_token(caller.authorization)
            if presented is None:
                raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'")
            if not hmac.compare_digest(presented.encode(), self._token):
                raise Forbidden("Invalid bearer token")
            return
        if not guarded:
            return
        if not self._trust_loopback:
            raise Forbidden(LOOPBACK_OFF_HINT)
        if not is_loopback(caller.remote_addr):
            raise Forbidden(REMOTE_USE_HINT)
        if caller.proxied:
            raise Forbidden(PROXIED_HINT)
        self._check_host(caller.host)
        self._check_not_a_web_page(caller)

    def is_local_name(self, host: str) -> bool:
        """True when ``host`` (``Host``-header syntax) is a loopback name or an allowed host."""
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if name in LOOPBACK_NAMES or is_loopback(name):
            return True
        return any(name == allowed and allowed_port in (None, port)
                   for allowed, allowed_port in self._allowed_hosts)

    def _check_host(self, host: str | None) -> None:
        # no Host at all: an HTTP/1.0 program; every browser sends one
        if host is not None and not self.is_local_name(host):
            raise Forbidden(
                f"Request addressed to {host!r}, which is not a loopback name: without a token "
                "this endpoint answers requests to localhost, 127.0.0.1 or [::1] (any port), "
                "or to a host listed in COMMON_API_ALLOWED_HOSTS.")

    @staticmethod
    def _check_not_a_web_page(caller: Caller) -> None:
        own = caller.own_origin()
        origin, referer = caller.origin or None, caller.referer or None
        if origin is not None and (own is None or _origin_of(origin) != own):
            raise Forbidden(f"Cross-origin request refused (Origin: {origin[:100]}). "
                            + BROWSER_HINT)
        site = caller.fetch_site
        if site is not None and site.strip().lower() not in _OWN_FETCH_SITES:
            raise Forbidden(f"Cross-site request refused (Sec-Fetch-Site: {site[:40]}). "
                            + BROWSER_HINT)
        if referer is not None and (own is None or _origin_of(referer) != own):
            raise Forbidden(f"Request sent from another page refused (Referer: {referer[:100]}). "
                            + BROWSER_HINT)
