"""Frames on the channel: a 4-byte big-endian length, then that many bytes of JSON.

A reader knows the whole size from the first four bytes, so an oversized frame is refused
before any of it is read, and nothing is parsed until every byte has arrived in time.
"""

from __future__ import annotations

import json
import struct
from typing import Any

_LENGTH = struct.Struct(">I")
HEADER_BYTES = _LENGTH.size


class FrameError(ValueError):
    """A frame that is too big, cut short or not the JSON object expected."""


class RemoteError(RuntimeError):
    """The asked worker could not answer the request (unknown kind, failing handler)."""


def encode(payload: Any) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Collects one frame from chunks; ``feed`` returns the payload once it is complete."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._size: int | None = None

    def feed(self, chunk: bytes) -> bytes | None:
        self._buffer += chunk
        if self._size is None and len(self._buffer) >= HEADER_BYTES:
            (self._size,) = _LENGTH.unpack_from(self._buffer)
            if self._size > self._limit:
                raise FrameError(f"frame of {self._size} bytes, over the {self._limit}-byte "
                                 "limit")
        if self._size is None:
            return None
        if len(self._buffer) > HEADER_BYTES + self._size:
            raise FrameError("bytes after the frame")
        if len(self._buffer) < HEADER_BYTES + self._size:
            return None
        return bytes(self._buffer[HEADER_BYTES:])

    def wanted(self) -> int:
        """How many more bytes complete the frame (at least the header's)."""
        if self._size is None:
            return HEADER_BYTES - len(self._buffer)
        return HEADER_BYTES + self._size - len(self._buffer)


def decode_object(payload: bytes) -> dict[str, Any]:
    """The JSON object in ``payload``; FrameError for anything else (deep nesting too)."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise FrameError(f"not JSON: {type(error).__name__}") from None
    if not isinstance(value, dict):
        raise FrameError("not a JSON object")
    return value


def request(kind: str, body: Any) -> bytes:
    return encode({"kind": kind, "body": body})


def answer(body: Any) -> bytes:
    return encode({"ok": True, "body": body})


def failure(message: str) -> bytes:
    return encode({"ok": False, "error": message})


def read_answer(payload: bytes) -> Any:
    """The body of an answer frame; RemoteError when the worker answered with an error."""
    value = decode_object(payload)
    if value.get("ok") is True and "body" in value:
        return value["body"]
    if value.get("ok") is False:
        raise RemoteError(str(value.get("error"))[:500])
    raise FrameError("not an answer")
