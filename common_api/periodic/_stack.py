"""Where a thread is now: its current Python stack as ``module:function (file:line)`` lines.

Standard library only. ``sys._current_frames()`` is one call under the GIL that sees every
thread's current frame without stopping or tracing it.
"""

from __future__ import annotations

import sys
from types import FrameType

#: At most this many frames are shown: the innermost ones, where the thread is stuck.
MAX_STACK_FRAMES = 30


def describe_frame(frame: FrameType) -> str:
    """``module:function (file:line)`` for one frame."""
    module = frame.f_globals.get("__name__")
    code = frame.f_code
    function = getattr(code, "co_qualname", code.co_name)
    return (f"{module if isinstance(module, str) else '?'}:{function} "
            f"({code.co_filename}:{frame.f_lineno or 0})")


def thread_stack(ident: int | None, limit: int = MAX_STACK_FRAMES) -> list[str]:
    """The current stack of the thread ``ident``, innermost last, its ``limit`` innermost
    frames; empty when that thread is not alive (or ``ident`` is None)."""
    if ident is None:
        return []
    frame: FrameType | None = sys._current_frames().get(ident)
    lines: list[str] = []
    while frame is not None and len(lines) < limit:
        lines.append(describe_frame(frame))
        frame = frame.f_back
    del frame
    lines.reverse()
    return lines
