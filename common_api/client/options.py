"""Command-line values of the client commands: durations, URL lists, the token.

Each function raises :class:`~common_api.client.http.UsageError` with a one-line message,
so a bad value ends the command with exit status 2 and no traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from common_api.client.http import UsageError, normalize_url

TOKEN_ENV = "COMMON_API_TOKEN"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds from ``300``, ``30s``, ``5m``, ``1.5h``; more than zero."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"invalid duration {text!r} (seconds, or a number with s, m or h: "
                         "30s, 5m, 2h)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r} (must be more than zero)")
    return seconds


def format_seconds(seconds: float) -> str:
    """The query value of a duration: ``300`` rather than ``300.0``."""
    return str(int(seconds)) if seconds.is_integer() else f"{seconds:g}"


def read_url_file(path: str) -> list[str]:
    """URLs from a file, one a line; blank lines and ``#`` comments are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read URL file {path}: {_reason(error)}") from None
    urls = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            urls.append(entry)
    return urls


def collect_urls(given: Iterable[str], url_file: str | None) -> list[str]:
    """The normalised, de-duplicated URLs of the arguments and the file, in order."""
    raw = [*given, *(read_url_file(url_file) if url_file else [])]
    if not raw:
        raise UsageError("no component URL given (pass URLs or --file FILE)")
    urls: list[str] = []
    for text in raw:
        url = normalize_url(text)
        if url not in urls:
            urls.append(url)
    return urls


def read_token(token_file: str | None) -> str | None:
    """The bearer token: the file's content if a file is given, else ``COMMON_API_TOKEN``."""
    if token_file is None:
        source = TOKEN_ENV
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    else:
        source = f"token file {token_file}"
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read {source}: {_reason(error)}") from None
        if not token:
            raise UsageError(f"{source} is empty")
    # checked here, so a bad token never reaches an HTTP library error message
    if not (token.isascii() and token.isprintable()):
        raise UsageError(f"{source} holds characters a bearer token cannot have "
                         "(only printable ASCII, one line)")
    return token


def read_script(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read script {path}: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error)
