"""Who may call what: bearer token when one is configured, loopback-only otherwise.

With a token, every request must carry ``Authorization: Bearer <token>`` (compared in
constant time); the health endpoint may be left open for probes. Without one, the
endpoints that change state or reveal the environment answer loopback clients only,
judged by the socket's peer address. A request that carries a forwarding header
(``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``) is never treated as loopback: it came
through a proxy, whose own loopback address says nothing about the real client. Headers
can only narrow this rule, never widen it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from common_api.errors import Forbidden, Unauthorized

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


class AccessPolicy:
    """Decides whether a request may proceed; raises Unauthorized or Forbidden if not."""

    def __init__(self, token: str | None, trust_loopback: bool = True,
                 public_health: bool = False) -> None:
        self._token = token.encode() if token else None
        self._trust_loopback = trust_loopback
        self._public_health = public_health

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def check(self, remote_addr: str | None, authorization: str | None, *, guarded: bool,
              proxied: bool = False, health: bool = False) -> None:
        if self._token is not None:
            if health and self._public_health:
                return
            presented = bearer_token(authorization)
            if presented is None:
                raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'")
            if not hmac.compare_digest(presented.encode(), self._token):
                raise Forbidden("Invalid bearer token")
            return
        if not guarded:
            return
        if not self._trust_loopback:
            raise Forbidden(LOOPBACK_OFF_HINT)
        if not is_loopback(remote_addr):
            raise Forbidden(REMOTE_USE_HINT)
        if proxied:
            raise Forbidden(PROXIED_HINT)
