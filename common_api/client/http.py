"""One small HTTP layer for the client commands, on ``urllib.request`` (no new dependency).

Every call has a timeout and either returns a :class:`Reply` (any HTTP status, error
statuses included: the caller decides what they mean) or raises :class:`Unreachable`
with a short reason an operator can act on ("connection refused", "timed out after
5s"). Redirects are never followed: a component's endpoints do not redirect, and
following one would send the bearer token to wherever it points.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common_api import __version__

USER_AGENT = f"common-api-client/{__version__}"
CHUNK = 64 * 1024
MAX_MESSAGE = 300


class UsageError(Exception):
    """The command line asks for something impossible (exit status 2)."""


class Unreachable(Exception):
    """No HTTP answer came back; ``str(error)`` says why."""


def normalize_url(text: str) -> str:
    """A component's base URL without a trailing slash; ``host:port`` means ``http://``.

    A prefix path (``http://host:7000/ops``) is kept: endpoint paths are appended to it.
    """
    raw = text.strip()
    if not raw:
        raise UsageError("empty URL")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in {"http", "https"}:
        raise UsageError(f"unsupported URL scheme in {text!r} (use http:// or https://)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"bad port in URL {text!r}") from None
    if not parts.hostname:
        raise UsageError(f"no host in URL {text!r}")
    if parts.query or parts.fragment:
        raise UsageError(f"URL {text!r} must not have a query or fragment")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not JSON."""
        return json.loads(self.body)

    def message(self) -> str:
        """The error message of a failed answer: ``{"error": ...}`` or the text's first line."""
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            text = data["error"]
        else:
            text = self.text.strip().splitlines()[0] if self.text.strip() else ""
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "..."
        return text or http.client.responses.get(self.status, "")

    @property
    def is_html(self) -> bool:
        return self.headers.get("content-type", "").split(";")[0].strip() == "text/html"

    def problem(self, sent_token: bool) -> str:
        """What a failed answer means for the operator, in one line: ``unauthorised`` for
        401 and 403, ``not a common_api endpoint`` for an HTML page (common_api never
        answers HTML: a wrong URL or prefix path, or another server), else the status and
        the server's message."""
        if self.status in (401, 403):
            hint = (" (set COMMON_API_TOKEN or use --token-file)" if not sent_token
                    else " (the token was refused)" if self.status == 403 else "")
            return f"unauthorised: HTTP {self.status}: {self.message()}{hint}"
        if self.is_html and self.status in (404, 405):
            return (f"not a common_api endpoint: HTTP {self.status} with an HTML page (check "
                    "the URL and its prefix path)")
        reason = f"HTTP {self.status}: {self.message()}"
        if 300 <= self.status < 400:
            reason += f" (redirect to {self.headers.get('location', '?')} not followed)"
        return reason


def encode_multipart(field_name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file part; returns (body, content type)."""
    boundary = "common-api-" + secrets.token_hex(16)
    while boundary.encode() in data:  # pragma: no cover - 128 random bits
        boundary = "common-api-" + secrets.token_hex(16)
    # quoting as browsers do (WHATWG HTML): a name cannot break out of its header
    quoted = filename.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field_name}"; filename="{quoted}"\r\n'
            "Content-Type: text/x-python\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None  # the 3xx comes back to the caller as an HTTPError


def _describe(error: BaseException, timeout: float) -> str:
    """A short, actionable reason for a failure to get an answer."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        reason = error.reason
        if isinstance(reason, BaseException):
            return _describe(reason, timeout)
    if isinstance(error, TimeoutError):  # socket.timeout is the same class
        return f"timed out after {timeout:g}s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host ({error.strerror or error})"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(error, http.client.HTTPException):
        return f"bad HTTP answer: {type(error).__name__}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


class Client:
    """Talks to components: one bearer token for all, one timeout per call.

    The timeout bounds connecting and each read, and the body as a whole: a server that
    trickles its answer is cut off once the deadline has passed.
    """

    def __init__(self, token: str | None = None, timeout: float = 10.0) -> None:
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect())

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    def get(self, base: str, path: str, params: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", base, path, params)

    def post(self, base: str, path: str, body: bytes = b"",
             content_type: str = "application/octet-stream") -> Reply:
        return self.request("POST", base, path, body=body, content_type=content_type)

    def request(self, method: str, base: str, path: str,
                params: Mapping[str, str] | None = None, body: bytes | None = None,
                content_type: str | None = None) -> Reply:
        url = base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("User-Agent", USER_AGENT)
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        deadline = time.monotonic() + self.timeout
        try:
            try:
                response = self._opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as error:
                response = error  # an answer all the same: 4xx, 5xx or an unfollowed 3xx
            with response:
                headers = {name.lower(): value for name, value in response.headers.items()}
                data = self._read(response, deadline)
                return Reply(response.status or 0, headers, data)
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise Unreachable(_describe(error, self.timeout)) from None

    def _read(self, response: Any, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while chunk := response.read(CHUNK):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError
        return b"".join(chunks)
