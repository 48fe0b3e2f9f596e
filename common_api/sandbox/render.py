"""``str()`` and ``repr()`` of host objects, showing only what a script could read.

The default reprs of some objects print what the attribute policy hides:
``types.SimpleNamespace`` shows underscore attributes, a dataclass shows every
field, a ``dict`` subclass shows its items (a ``flask.Config`` among them), and
each shows the repr of what it holds. :class:`SafeRepr` renders those itself,
from public attributes and items, each value under the same rule, within a size
budget. A host class's own ``__str__``/``__repr__`` is host API and runs; any
other object is ``<Type object>``.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Iterable

from . import policy
from .origin import PLAIN_BASES, HostOrigin

MAX_CHARS = 20_000
MAX_ITEMS = 200
_EXACT = (list, tuple, set, frozenset, dict)
_MISSING = object()
_ELIDED: dict[type, str] = {list: "[...]", tuple: "(...)", dict: "{...}"}


def log_text(text: str) -> str:
    """``text`` as one quoted, ASCII-only token of a log line: newlines, ANSI escapes,
    bidirectional and other format characters, quotes and lone surrogates become escapes,
    so what a script chose to say can neither forge a line nor a field of one."""
    return json.dumps(text, ensure_ascii=True)


def definer(obj: object, name: str) -> tuple[type | None, object]:
    """The class of ``obj``'s MRO that defines ``name``, and what it defines."""
    for klass in type(obj).__mro__:
        found = vars(klass).get(name, _MISSING)
        if found is not _MISSING:
            return klass, found
    return None, _MISSING


class SafeRepr:
    def __init__(self, origin: HostOrigin) -> None:
        self.origin = origin

    def render(self, obj: object, as_str: bool) -> str:
        text = self._repr(obj, 2, [MAX_CHARS], as_str)
        return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "..."

    def _repr(self, value: object, depth: int, room: list[int], as_str: bool = False) -> str:
        if room[0] <= 0:
            return "..."
        tp = type(value)
        if tp in policy.WRITABLE_SCALARS or tp in (bytes, complex):
            text = repr(value)[:room[0]]
        elif tp in _EXACT or self.origin.class_ok(tp):
            text = self._object(value, depth, room, as_str)
        else:
            text = f"<{tp.__name__} object>"
        room[0] -= len(text)
        return text

    def _own(self, value: object, as_str: bool) -> str | None:
        """The host class's own str/repr, if it has one (a dataclass's is generated)."""
        for dunder in ("__str__", "__repr__") if as_str else ("__repr__",):
            klass, _ = definer(value, dunder)
            if (klass is not None and klass is not object and klass not in PLAIN_BASES
                    and self.origin.defines(klass) and not dataclasses.is_dataclass(klass)):
                return str(value) if dunder == "__str__" else repr(value)
        return None

    def _object(self, value: object, depth: int, room: list[int], as_str: bool) -> str:
        tp = type(value)
        own = None if tp in _EXACT else self._own(value, as_str)
        if own is not None:
            return own
        structured = isinstance(value, _EXACT) or tp is types.SimpleNamespace or (
            dataclasses.is_dataclass(value))
        if not structured:
            return f"<{tp.__name__} object>"
        if depth < 0:  # nested too deep: elided, like Python's own recursion marker
            elided = _ELIDED.get(tp)
            if elided is not None:
                return elided
            return f"{'namespace' if tp is types.SimpleNamespace else tp.__name__}(...)"
        inner = depth - 1

        def join(pairs: Iterable[tuple[str, object]], sep: str) -> str:
            parts = []
            for count, (key, item) in enumerate(pairs):
                if count >= MAX_ITEMS or room[0] <= 0:
                    parts.append("...")
                    break
                parts.append(f"{key}{sep}{self._repr(item, inner, room)}")
            return ", ".join(parts)

        body = ""
        if isinstance(value, dict):
            body = "{" + join(((self._repr(k, inner, room), v) for k, v in value.items()),
                              ": ") + "}"
        elif isinstance(value, list):
            body = "[" + join((("", v) for v in value), "") + "]"
        elif isinstance(value, tuple):
            body = "(" + join((("", v) for v in value), "") + ("," * (len(value) == 1)) + ")"
        elif isinstance(value, (set, frozenset)):
            body = "{" + join((("", v) for v in value), "") + "}" if value else ""
            if tp is frozenset or (tp is set and not value):
                body = f"{tp.__name__}({body})"
        if tp in _EXACT:
            return body
        shown = join(self._fields(value), "=")
        name = "namespace" if tp is types.SimpleNamespace else tp.__name__
        return f"{name}({', '.join(p for p in (body, shown) if p)})"

    def _fields(self, value: object) -> list[tuple[str, object]]:
        if dataclasses.is_dataclass(value):
            return [(f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value)
                    if f.repr and not f.name.startswith("_")]
        if type(value) is types.SimpleNamespace:
            return [(k, v) for k, v in vars(value).items()
                    if isinstance(k, str) and not k.startswith("_")]
        return []
