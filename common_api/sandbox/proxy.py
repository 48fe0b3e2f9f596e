"""Worker side of the host bridge: performs a script's requests on the live app.

The child holds handles (small integers) that index this run's table of host
objects. Every request names a handle and an operation; the bridge checks the
handle is one it issued in this run, applies the host policy and answers plain
data (copied, size-capped) or a new handle. Nothing the child sends is
unpickled or evaluated: requests are tagged JSON (:mod:`.protocol`).

Host policy, decided by type:

* ``app`` itself exposes only :data:`policy.APP_ATTRIBUTES` (``state``, ``name``):
  never its config, secrets, routes, hooks, extensions or Jinja environment;
* ``app.state`` (a :class:`types.SimpleNamespace`) and objects whose class is
  defined by the host (not by the standard library or a framework in
  :data:`policy.HOST_DENIED_ORIGINS`) can be read: their public attributes, when
  the class that defines the attribute is itself a host class, and their methods
  can be called;
* modules, classes, framework and standard-library objects (a Flask app, its
  config, loggers, threads, locks, files...) are never handed out;
* an exception raised by the host reaches the script as a builtin exception
  class carrying only a message.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import itertools
import types
import uuid
from collections.abc import Callable
from typing import Any

from . import policy, protocol


class Refused(Exception):
    """A request the host policy refuses; ``kind`` names the builtin exception."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AppView:
    """Handle 0: the allowlisted view of the Flask app."""

    __slots__ = ("app",)

    def __init__(self, app: object) -> None:
        self.app = app


def _origin_ok(cls: type) -> bool:
    if cls is types.SimpleNamespace:
        return True
    return policy.host_module(getattr(cls, "__module__", None))


def host_object_ok(value: object) -> bool:
    """Whether ``value`` may be handed to a script as a handle."""
    if isinstance(value, (type, types.ModuleType)):
        return False
    if isinstance(value, types.MethodType):
        return host_object_ok(value.__self__) and _defined_by_host(value.__func__)
    if isinstance(value, types.BuiltinMethodType):
        owner = value.__self__
        return not isinstance(owner, types.ModuleType) and host_object_ok(owner)
    if isinstance(value, types.FunctionType):
        return _defined_by_host(value)
    return _origin_ok(type(value))


def _defined_by_host(func: object) -> bool:
    return policy.host_module(getattr(func, "__module__", None))


def _instance_dict(obj: object) -> dict[str, Any] | None:
    try:
        found = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return found if isinstance(found, dict) else None


def attribute_allowed(obj: object, name: str) -> bool:
    """Whether the attribute ``name`` of host object ``obj`` may be read."""
    if name.startswith("_"):
        return False
    instance_dict = _instance_dict(obj)
    if instance_dict is not None and name in instance_dict:
        return True
    for klass in type(obj).__mro__:
        if name in vars(klass):
            data = policy.DATA_ATTRS.get(klass)
            return _origin_ok(klass) or (data is not None and name in data)
    return special_allowed(obj, "__getattr__")


def special_allowed(obj: object, dunder: str) -> bool:
    """Whether the special method ``dunder`` of ``obj`` comes from a host class."""
    for klass in type(obj).__mro__:
        if dunder in vars(klass):
            return _origin_ok(klass) or klass in policy.DATA_ATTRS
    return False


def _exception_kind(exc: BaseException) -> str:
    for klass in type(exc).__mro__:
        if klass.__module__ == "builtins" and klass.__name__ in policy.SAFE_EXCEPTIONS:
            return klass.__name__
    return "Exception"


_AS_TEXT = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal,
            fractions.Fraction, uuid.UUID, enum.Enum)
_AS_SEQUENCE: tuple[tuple[type, type], ...] = (
    (tuple, tuple), (list, list), (frozenset, frozenset), (set, set),
    (collections.deque, list),
)


def _plain(value: object) -> object:
    """Turn standard-library data into plain data; anything else is returned as is.

    Subclasses of plain scalars (IntEnum, StrEnum...) travel as their base value;
    standard-library containers (OrderedDict, defaultdict, deque, named tuples) as
    plain containers; dates, decimals, UUIDs and enum members as their text.
    """
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return "".join((value,))
    if isinstance(value, _AS_TEXT):
        return str(value)
    if _origin_ok(type(value)):
        return value  # a host class: handed out as a handle
    if isinstance(value, dict):
        return dict(value)
    for base, build in _AS_SEQUENCE:
        if isinstance(value, base):
            return build(value)
    return value


class HostBridge:
    """The handle table and request dispatcher of one script run."""

    def __init__(self, app: object) -> None:
        self.objects: list[object] = [AppView(app)]
        self.index: dict[int, int] = {id(app): 0}
        self.calls = 0
        self._ops: dict[str, Callable[[object, dict[str, Any]], object]] = {
            "getattr": self._getattr,
            "call": self._call,
            "getitem": self._getitem,
            "len": lambda obj, _m: self._special(obj, "__len__", len),
            "bool": lambda obj, _m: self._special(obj, "__bool__", bool, default=True),
            "contains": self._contains,
            "iter": self._iter,
            "str": self._str,
            "repr": self._str,
        }

    # -- entry point ---------------------------------------------------------------------
    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer one request: ``{"ok": value}`` or ``{"err": [kind, message]}``."""
        self.calls += 1
        try:
            op = self._ops.get(message.get("op"))  # type: ignore[arg-type]
            if op is None:
                raise Refused("TypeError", "unknown operation")
            target = self._resolve(message.get("h"))
            reply = {"ok": self.encode(op(target, message))}
        except Refused as exc:
            return {"err": [exc.kind, str(exc)[:policy.MAX_ERROR_CHARS]]}
        except protocol.DataLimit as exc:
            return {"err": ["ValueError", str(exc)]}
        except Exception as exc:  # the host raised: message only, never a traceback
            return {"err": [_exception_kind(exc), _message(exc)]}
        return reply

    # -- handles -------------------------------------------------------------------------
    def _resolve(self, handle: object) -> object:
        if type(handle) is not int or not 0 <= handle < len(self.objects):
            raise Refused("TypeError", "invalid handle")
        return self.objects[handle]

    def _handle_of(self, value: object) -> int:
        if not host_object_ok(value):
            raise Refused(
                "AttributeError",
                f"{type(value).__name__!r} objects are not accessible from scripts",
            )
        handle = self.index.get(id(value))
        if handle is None or self.objects[handle] is not value:
            handle = len(self.objects)
            self.objects.append(value)
            self.index[id(value)] = handle
        return handle

    def encode(self, value: object) -> object:
        return protocol.encode(value, self._handle_of, _plain)

    def decode(self, data: object) -> Any:
        try:
            return protocol.decode(data, self._resolve_argument)
        except (ValueError, TypeError) as exc:
            raise Refused("TypeError", f"bad argument: {exc}") from None

    def _resolve_argument(self, handle: int) -> object:
        value = self._resolve(handle)
        if isinstance(value, AppView):
            raise Refused("TypeError", "app cannot be passed to the host")
        return value

    # -- operations ----------------------------------------------------------------------
    def _getattr(self, obj: object, message: dict[str, Any]) -> object:
        name = message.get("name")
        if type(name) is not str:
            raise Refused("TypeError", "attribute name must be a string")
        if isinstance(obj, AppView):
            if name not in policy.APP_ATTRIBUTES:
                raise Refused("AttributeError", f"app attribute {name!r} is not accessible")
            return getattr(obj.app, name)
        if not attribute_allowed(obj, name):
            raise Refused(
                "AttributeError",
                f"access to attribute {name!r} of {type(obj).__name__!r} objects "
                "is not allowed",
            )
        return getattr(obj, name)

    def _call(self, obj: object, message: dict[str, Any]) -> object:
        if isinstance(obj, AppView) or not callable(obj):
            raise Refused("TypeError", f"{type(obj).__name__!r} object is not callable")
        if not isinstance(obj, (types.MethodType, types.FunctionType,
                                types.BuiltinMethodType)) and not special_allowed(obj, "__call__"):
            raise Refused("TypeError", f"{type(obj).__name__!r} object is not callable")
        raw_args, kwargs = message.get("args", []), message.get("kwargs", [])
        if not isinstance(raw_args, list) or not isinstance(kwargs, list):
            raise Refused("TypeError", "bad call")
        args = [self.decode(a) for a in raw_args]
        named: dict[str, object] = {}
        for pair in kwargs:
            if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is str):
                raise Refused("TypeError", "bad keyword argument")
            named[pair[0]] = self.decode(pair[1])
        return obj(*args, **named)

    def _getitem(self, obj: object, message: dict[str, Any]) -> object:
        if isinstance(obj, AppView) or not special_allowed(obj, "__getitem__"):
            raise Refused("TypeError", f"{type(obj).__name__!r} object is not subscriptable")
        return obj[self.decode(message.get("key"))]  # type: ignore[index]

    def _contains(self, obj: object, message: dict[str, Any]) -> object:
        item = self.decode(message.get("item"))
        return self._special(obj, "__contains__", lambda o: item in o)

    def _iter(self, obj: object, message: dict[str, Any]) -> object:
        def materialize(o: Any) -> list[object]:
            items = list(itertools.islice(iter(o), policy.MAX_DATA_ITEMS + 1))
            if len(items) > policy.MAX_DATA_ITEMS:
                raise Refused("ValueError", "too many items to iterate from the host")
            return items

        return self._special(obj, "__iter__", materialize)

    def _str(self, obj: object, message: dict[str, Any]) -> object:
        op = message.get("op")
        if isinstance(obj, AppView):
            return f"<app {getattr(obj.app, 'name', '?')!r}>"
        dunder = "__str__" if op == "str" else "__repr__"
        for klass in type(obj).__mro__:
            if dunder in vars(klass) and klass is not object:
                if _origin_ok(klass):
                    return str(obj) if op == "str" else repr(obj)
                break
        return f"<{type(obj).__name__} object>"

    def _special(self, obj: object, dunder: str, action: Callable[[Any], object],
                 default: object = None) -> object:
        if not isinstance(obj, AppView) and special_allowed(obj, dunder):
            return action(obj)
        if default is not None:
            return default
        raise Refused("TypeError", f"{type(obj).__name__!r} object does not support this")


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text[:policy.MAX_ERROR_CHARS]
