"""Host names as the ``Host`` header and the host settings write them: a leaf that the
configuration and the access checks both read."""

from __future__ import annotations

import ipaddress
import re

_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def split_host(text: str) -> tuple[str, int | None] | None:
    """``Host``-header syntax to (lower-case name, port): ``[::1]:7000`` is ``("::1", 7000)``.

    None when the text is not a host name or IP literal with an optional port.
    """
    text = text.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        try:
            ipaddress.IPv6Address(name.split("%", 1)[0])
        except ValueError:
            return None
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            return None
    else:
        name, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        name = name.removesuffix(".")
        if not _HOST_NAME.fullmatch(name):
            return None
    if port_text is None:
        return name, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)
