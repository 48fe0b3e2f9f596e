"""The script sandbox behind ``POST /run_script``.

See ``docs/sandbox.md`` for the design and the threat model. The blueprint only
needs :class:`ScriptRunner` and the types below.
"""

from __future__ import annotations

from .api import (
    DEFAULT_RESULT,
    ScriptBusy,
    ScriptError,
    ScriptOutcome,
    ScriptSettings,
    ScriptUnavailable,
)
from .runner import ScriptRunner

__all__ = [
    "DEFAULT_RESULT",
    "ScriptBusy",
    "ScriptError",
    "ScriptOutcome",
    "ScriptRunner",
    "ScriptSettings",
    "ScriptUnavailable",
]
