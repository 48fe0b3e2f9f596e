"""Who may call what: bearer token when one is configured, loopback-only otherwise.

With a token, every request must carry ``Authorization: Bearer <token>`` (compared in
constant time). Without one, the endpoints that change state or reveal the environment
answer loopback clients only, judged by the socket's peer address (never by a header a
client can write), and every other endpoint answers anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from common_api.errors import Forbidden, Unauthorized

REMOTE_USE_HINT = (
    "This endpoint answers loopback clients only. To use it remotely, set "
    "COMMON_API_TOKEN on the server and send 'Authorization: Bearer <token>'."
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


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, fit for logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class AccessPolicy:
    """Decides whether a request may proceed; raises Unauthorized or Forbidden if not."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def check(self, remote_addr: str | None, authorization: str | None, guarded: bool) -> None:
        if self._token is not None:
            scheme, _, credentials = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'")
            if not hmac.compare_digest(credentials.strip().encode(), self._token):
                raise Forbidden("Invalid bearer token")
            return
        if guarded and not is_loopback(remote_addr):
            raise Forbidden(REMOTE_USE_HINT)
