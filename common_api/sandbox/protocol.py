"""Wire format between the worker and a script's child process.

Frames are a 4-byte big-endian length followed by a UTF-8 JSON document. Values
are JSON with type tags, so nothing is ever unpickled, unmarshalled or evaluated
on either side:

* ``None``, ``bool``, ``int``, ``float`` and ``str`` are JSON scalars;
* ``{"t": "tuple" | "list" | "set" | "frozenset", "v": [...]}``;
* ``{"t": "dict", "v": [[key, value], ...]}``;
* ``{"t": "bytes", "v": "<base64>"}`` and ``{"t": "complex", "v": [re, im]}``;
* ``{"t": "h", "v": <int>}``: a handle, a reference to a host object held by the
  worker (decoded in the child as a :class:`~.remote.Remote`).

Encoding and decoding count items and depth and stop at the limits of
:mod:`.policy`.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

from .policy import MAX_DATA_DEPTH, MAX_DATA_ITEMS

HEADER = struct.Struct(">I")

_SEQUENCES: dict[type, str] = {tuple: "tuple", list: "list", set: "set", frozenset: "frozenset"}
_BUILD: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple, "list": list, "set": set, "frozenset": frozenset,
}


class DataLimit(ValueError):
    """A value is too large or too deeply nested to cross the process boundary."""


def dump_frame(message: dict[str, Any]) -> bytes:
    """Serialize ``message`` as one frame."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(len(body)) + body


def load_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body; anything but a JSON object is a :class:`ValueError`."""
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"malformed message: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise ValueError("malformed message: not an object")
    return message


class _Counter:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = 0

    def tick(self, depth: int) -> None:
        self.items += 1
        if self.items > MAX_DATA_ITEMS:
            raise DataLimit(f"value has more than {MAX_DATA_ITEMS} items")
        if depth > MAX_DATA_DEPTH:
            raise DataLimit(f"value is nested more than {MAX_DATA_DEPTH} levels deep")


def encode(value: object, handle_of: Callable[[object], int],
           fallback: Callable[[object], object] | None = None) -> object:
    """Encode plain data; other objects go through ``handle_of`` (which may refuse).

    ``fallback`` may turn a non-plain object into plain data first (or return it
    unchanged to have it handled).
    """
    counter = _Counter()

    def enc(v: object, depth: int) -> object:
        counter.tick(depth)
        tp = type(v)
        if v is None or tp is bool or tp is str or tp is float:
            return v
        if tp is int:
            if v.bit_length() > 4096:  # type: ignore[attr-defined]
                raise DataLimit("integer is too large to pass between processes")
            return v
        tag = _SEQUENCES.get(tp)
        if tag is not None:
            return {"t": tag, "v": [enc(x, depth + 1) for x in v]}  # type: ignore[attr-defined]
        if tp is dict:
            return {"t": "dict",
                    "v": [[enc(k, depth + 1), enc(x, depth + 1)]
                          for k, x in v.items()]}  # type: ignore[attr-defined]
        if tp is bytes or tp is bytearray:
            return {"t": "bytes", "v": base64.b64encode(v).decode("ascii")}  # type: ignore[arg-type]
        if tp is complex:
            return {"t": "complex", "v": [v.real, v.imag]}  # type: ignore[attr-defined]
        if fallback is not None:
            plain = fallback(v)
            if plain is not v:
                return enc(plain, depth)
        return {"t": "h", "v": handle_of(v)}

    return enc(value, 0)


def decode(data: object, resolve: Callable[[int], object]) -> Any:
    """Decode what :func:`encode` produced; handles go through ``resolve``."""
    counter = _Counter()

    def dec(d: object, depth: int) -> object:
        counter.tick(depth)
        if d is None or isinstance(d, (bool, int, float, str)):
            return d
        if not isinstance(d, dict):
            raise ValueError("malformed value")
        tag, v = d.get("t"), d.get("v")
        if tag == "h":
            if type(v) is not int:
                raise ValueError("malformed handle")
            return resolve(v)
        if tag == "bytes" and isinstance(v, str):
            return base64.b64decode(v.encode("ascii"), validate=True)
        if tag == "complex" and isinstance(v, list) and len(v) == 2:
            return complex(float(v[0]), float(v[1]))
        if not isinstance(v, list):
            raise ValueError("malformed value")
        if tag == "dict":
            out = {}
            for pair in v:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError("malformed dict")
                out[dec(pair[0], depth + 1)] = dec(pair[1], depth + 1)
            return out
        build = _BUILD.get(tag) if isinstance(tag, str) else None
        if build is None:
            raise ValueError("malformed value")
        return build([dec(x, depth + 1) for x in v])

    return dec(data, 0)
