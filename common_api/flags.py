"""The one true/false parser, for settings and query parameters alike."""

from __future__ import annotations

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
SPELLINGS = "true, false, 1, 0, yes, no, on, off"


def read_flag(value: object) -> bool | None:
    """``value`` as a flag (any case, spaces around ignored; a bool as itself), or None
    when it is not one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    return None
