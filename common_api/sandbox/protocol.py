"""Wire format between the worker and a script's child process.

Frames are a 4-byte big-endian length followed by a body. Requests and replies are
UTF-8 JSON documents (lone surrogates travel as such, ``surrogatepass``); the
script's final result and output travel as raw UTF-8 frames, never parsed as
JSON. Values are JSON with type tags, so nothing is ever unpickled, unmarshalled
or evaluated on either side:

* ``None``, ``bool``, ``int``, ``float`` and ``str`` are JSON scalars;
* ``{"t": "tuple" | "list" | "set" | "frozenset", "v": [...]}``;
* ``{"t": "dict", "v": [[key, value], ...]}``;
* ``{"t": "bytes", "v": "<base64>"}`` and ``{"t": "complex", "v": [re, im]}``;
* ``{"t": "h", "v": <int>}``: a handle, a reference to a host object held by the
  worker (decoded in the child as a :class:`~.remote.Remote`).

Encoding and decoding run under a :class:`Budget`: items (every visit counts, so
aliased data counts as the expansion it causes), depth, the estimated size of the
encoded reply (checked before it is serialized), the hash work of rebuilding sets
and dicts from untrusted keys, and a wall-clock deadline checked as they go.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from .policy import (
    MAX_DATA_DEPTH,
    MAX_DATA_ITEMS,
    MAX_DIGITS,
    MAX_HASH_WORK,
    MAX_HASHED_ITEMS,
)

HEADER = struct.Struct(">I")

_SEQUENCES: dict[type, str] = {tuple: "tuple", list: "list", set: "set", frozenset: "frozenset"}
_BUILD: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple, "list": list, "set": set, "frozenset": frozenset,
}
_HASHED = frozenset({"set", "frozenset", "dict"})
_CHOSEN_HASH = frozenset({"tuple", "frozenset"})
#: str and bytes keys hash randomly (unless the interpreter was told otherwise).
_RANDOM_KEYS: tuple[type, ...] = (str, bytes) if sys.flags.hash_randomization else ()
_CLOCK_EVERY = 256


class DataLimit(ValueError):
    """A value is too large or too deeply nested to cross the process boundary."""


class Expired(Exception):
    """The script's deadline passed while the worker was encoding or decoding."""


def dump_frame(message: dict[str, Any]) -> bytes:
    """Serialize ``message`` as one frame."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    data = body.encode("utf-8", "surrogatepass")
    return HEADER.pack(len(data)) + data


def raw_frame(data: bytes) -> bytes:
    """One frame holding ``data`` as is (the final result and output)."""
    return HEADER.pack(len(data)) + data


def escape(text: str) -> str:
    """``text`` as valid UTF-8 text: lone surrogates become ``\\udXXX`` escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def load_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body; anything but a JSON object is a :class:`ValueError`.

    The body's size is bounded by the caller. Parsing an integer is quadratic in
    its digits: the interpreter's default limit (4300 digits) bounds it; should the
    host have lifted that limit, integers are parsed through a length check.
    """
    limit = sys.get_int_max_str_digits()
    hooks: dict[str, Any] = {} if 0 < limit <= 4300 else {"parse_int": _bounded_int}
    try:
        message = json.loads(body.decode("utf-8", "surrogatepass"), **hooks)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"malformed message: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise ValueError("malformed message: not an object")
    return message


def _bounded_int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise DataLimit("a number is too long to pass between processes")
    return int(text)


_PLAIN_ATOMS = (type(None), bool, int, float, str, bytes, complex)
#: ints below this hash to themselves: distinct ones never collide (but -1 and -2)
HASH_MODULUS = 2 ** 61 - 1


def chosen_hash(value: object) -> bool:
    """Whether ``value`` is of a kind whose hash a script can choose to collide: an int
    beyond 61 bits, a complex, a tuple or frozenset of plain data (one holding a host
    object hashes as that object does), and str or bytes where hashing is not randomised."""
    tp = type(value)
    if tp is int:
        return abs(value) >= HASH_MODULUS  # type: ignore[arg-type]
    if tp is complex:
        return True
    if tp is str or tp is bytes:
        return not _RANDOM_KEYS  # the interpreter was told not to randomise (PYTHONHASHSEED=0)
    if tp is tuple or tp is frozenset:
        return all(_plain(item) for item in value)  # type: ignore[attr-defined]
    return False


def _plain(value: object) -> bool:
    tp = type(value)
    if tp in _PLAIN_ATOMS:
        return True
    return (tp is tuple or tp is frozenset) and all(
        _plain(item) for item in value)  # type: ignore[attr-defined]


def _key_weight(key: object, depth: int) -> int:
    """What comparing ``key`` with an equal-hashed key may cost, in items."""
    if (type(key) is tuple or type(key) is frozenset) and depth < MAX_DATA_DEPTH:
        return 1 + sum(_key_weight(item, depth + 1) for item in key)
    return 1


class Budget:
    """What one encoding or decoding may cost; raises when a bound is passed."""

    __slots__ = ("chosen", "deadline", "hash_work", "items", "max_items", "max_size", "size")

    def __init__(self, max_size: int | None = None, deadline: float | None = None,
                 max_items: int = MAX_DATA_ITEMS) -> None:
        self.items = 0
        self.max_items = max_items
        self.size = 0
        self.max_size = max_size
        self.hash_work = 0
        self.deadline = deadline
        #: decoded values whose hash the sender may have chosen (untrusted decoding)
        self.chosen: list[object] = []

    def tick(self, depth: int, size: int = 2) -> None:
        self.items += 1
        if self.items > self.max_items:
            raise DataLimit(f"value has more than {self.max_items} items")
        if depth > MAX_DATA_DEPTH:
            raise DataLimit(f"value is nested more than {MAX_DATA_DEPTH} levels deep")
        if self.max_size is not None:
            self.size += size
            if self.size > self.max_size:
                raise DataLimit(f"value is larger than {self.max_size} bytes")
        if (self.deadline is not None and self.items % _CLOCK_EVERY == 0
                and time.monotonic() > self.deadline):
            raise Expired()

    def hashed(self, keys: list[Any]) -> None:
        """Charge rebuilding a set or dict from ``keys`` (untrusted data only)."""
        if _RANDOM_KEYS and all(type(k) in _RANDOM_KEYS for k in keys):
            return
        count = len(keys)
        if count > MAX_HASHED_ITEMS:
            raise DataLimit(
                f"a set or dict of more than {MAX_HASHED_ITEMS} keys other than strings "
                "cannot be passed to the host"
            )
        # building the container compares each key with those of the same hash, each
        # comparison as costly as the key is large: charge exactly that, before it is built
        groups: dict[int, list[int]] = {}
        for key in keys:
            group = groups.setdefault(hash(key), [0, 0])
            group[0] += 1
            group[1] = max(group[1], _key_weight(key, 0))
        self.hash_work += sum(size * size * weight for size, weight in groups.values())
        if self.hash_work > MAX_HASH_WORK:
            raise DataLimit("too many set or dict keys with one hash in one request")


def _scalar_size(v: object) -> int:
    tp = type(v)
    if tp is str:
        return len(v) + 2  # type: ignore[arg-type]
    if tp is int:
        return int(v.bit_length()) // 3 + 2  # type: ignore[attr-defined]
    return 8


def encode(value: object, handle_of: Callable[[object], int],
           fallback: Callable[[object], object] | None = None,
           budget: Budget | None = None) -> object:
    """Encode plain data; other objects go through ``handle_of`` (which may refuse).

    ``fallback`` may turn a non-plain object into plain data first (or return it
    unchanged to have it handled).
    """
    counter = budget or Budget()

    def enc(v: object, depth: int) -> object:
        tp = type(v)
        if v is None or tp is bool or tp is str or tp is float:
            counter.tick(depth, _scalar_size(v))
            return v
        if tp is int:
            if v.bit_length() > 4096:  # type: ignore[attr-defined]
                raise DataLimit("integer is too large to pass between processes")
            counter.tick(depth, _scalar_size(v))
            return v
        counter.tick(depth, 16)
        tag = _SEQUENCES.get(tp)
        if tag is not None:
            return {"t": tag, "v": [enc(x, depth + 1) for x in v]}  # type: ignore[attr-defined]
        if tp is dict:
            return {"t": "dict",
                    "v": [[enc(k, depth + 1), enc(x, depth + 1)]
                          for k, x in v.items()]}  # type: ignore[attr-defined]
        if tp is bytes or tp is bytearray:
            counter.tick(depth, len(v) * 4 // 3 + 4)  # type: ignore[arg-type]
            return {"t": "bytes", "v": base64.b64encode(v).decode("ascii")}  # type: ignore[arg-type]
        if tp is complex:
            return {"t": "complex", "v": [v.real, v.imag]}  # type: ignore[attr-defined]
        if fallback is not None:
            plain = fallback(v)
            if plain is not v:
                return enc(plain, depth)
        return {"t": "h", "v": handle_of(v)}

    return enc(value, 0)


def decode(data: object, resolve: Callable[[int], object], *,
           budget: Budget | None = None, untrusted: bool = False) -> Any:
    """Decode what :func:`encode` produced; handles go through ``resolve``.

    ``untrusted`` (the worker decoding a request) charges every set and dict
    rebuilt from keys other than strings to the budget's hash work.
    """
    counter = budget or Budget()

    def dec(d: object, depth: int) -> object:
        counter.tick(depth)
        if d is None or isinstance(d, (bool, int, float, str)):
            if untrusted and chosen_hash(d):
                counter.chosen.append(d)
            return d
        if not isinstance(d, dict):
            raise ValueError("malformed value")
        tag, v = d.get("t"), d.get("v")
        if tag == "h":
            if type(v) is not int:
                raise ValueError("malformed handle")
            return resolve(v)
        if tag == "bytes" and isinstance(v, str):
            data = base64.b64decode(v.encode("ascii"), validate=True)
            if untrusted and chosen_hash(data):
                counter.chosen.append(data)
            return data
        if tag == "complex" and isinstance(v, list) and len(v) == 2:
            number = complex(float(v[0]), float(v[1]))
            if untrusted:
                counter.chosen.append(number)
            return number
        if not isinstance(v, list):
            raise ValueError("malformed value")
        if tag == "dict":
            pairs = []
            for pair in v:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError("malformed dict")
                pairs.append((dec(pair[0], depth + 1), dec(pair[1], depth + 1)))
            if untrusted:
                counter.hashed([k for k, _ in pairs])
            return dict(pairs)
        build = _BUILD.get(tag) if isinstance(tag, str) else None
        if build is None:
            raise ValueError("malformed value")
        items = [dec(x, depth + 1) for x in v]
        if untrusted and tag in _HASHED:
            counter.hashed(items)
        built = build(items)
        if untrusted and tag in _CHOSEN_HASH and chosen_hash(built):
            counter.chosen.append(built)
        return built

    return dec(data, 0)
