"""Start-up checks that reach the server's log whatever the host's logging config does.

What common_api finds wrong at start-up (a route clash, an unknown setting, a missing hook,
a feature turned off) is worth nothing unread. A host's ``logging.config.dictConfig``
disables every logger that exists when it runs unless told not to, a root level of ERROR
or handlers of their own filter WARNING out: :func:`warn` logs through the logger as usual
when the record would reach a handler, and otherwise writes the line itself to standard
error (gunicorn's error log by default), in gunicorn's layout. Stdlib only.
"""

from __future__ import annotations

import logging
import os
import sys
import time

__all__ = ["reaches_a_handler", "warn"]


def reaches_a_handler(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``level`` logged on ``logger`` would be written somewhere."""
    if logger.disabled or not logger.isEnabledFor(level):
        return False
    found_any = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            found_any = True
            if level >= handler.level:
                return True
        if not current.propagate:
            break
        current = current.parent
    # no handler at all: logging's last resort writes WARNING and above to stderr
    last = logging.lastResort
    return not found_any and last is not None and level >= last.level


def _has_handlers(logger: logging.Logger) -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False


def warn(logger: logging.Logger, message: str, *args: object) -> None:
    """Log ``message % args`` at WARNING on ``logger``, or, if the host's logging config
    would drop it, write it to standard error."""
    if reaches_a_handler(logger, logging.WARNING) and _has_handlers(logger):
        logger.warning(message, *args)
        return
    # dropped, or written bare by logging's last resort: the line in the server's layout
    text = message % args if args else message
    if logger.name.partition(".")[0] == "common_api":  # the line names the logger already
        text = text.removeprefix("common_api: ")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    line = f"[{stamp}] [{os.getpid()}] [WARNING] {logger.name}: {text}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # no stderr to write to: nothing else can be done
