"""Worker side of the host bridge: performs a script's requests on the live app.

The child holds handles (small integers) that index this run's table of host
objects. Every request names a handle and an operation; the bridge checks the
handle is one it issued in this run, applies the host policy *before* decoding
anything else of the request, decodes arguments under a budget, performs the
operation and answers plain data (copied, size-checked before serializing) or a
new handle. Nothing the child sends is unpickled or evaluated (:mod:`.protocol`).

Host policy (:mod:`.origin` decides what is host code):

* ``app`` itself exposes only :data:`policy.APP_ATTRIBUTES` (``state``, ``name``);
* ``app.state`` (a :class:`types.SimpleNamespace`) and host objects can be read:
  instance attributes and attributes defined by a host class, never through a
  ``__getattr__`` (which could delegate anywhere), never attributes a host class
  inherits from a builtin (``dict.update``, ``list.sort``: not host API);
* modules, classes, builtin methods, framework, third-party and standard-library
  objects (a Flask app or subclass, its config, loggers, threads, locks...) are
  never handed out, and framework containers are not copied by value;
* a script may assign plain data to an existing plain-data public attribute of a
  host object (:meth:`HostBridge._setattr`); each write is recorded;
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
import math
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from . import policy, protocol
from .collisions import CollisionGuard
from .origin import PLAIN_BASES, HostOrigin
from .render import SafeRepr, definer

#: Special operations of builtin plain-data bases that a host subclass may use:
#: each is one bounded step (no loop over script-supplied data).
_BOUNDED_SPECIALS = frozenset({"__len__", "__iter__", "__getitem__", "__contains__"})


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


def _instance_dict(obj: object) -> dict[str, Any] | None:
    try:
        found = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return found if isinstance(found, dict) else None


def _exception_kind(exc: BaseException) -> str:
    for klass in type(exc).__mro__:
        if klass.__module__ == "builtins" and klass.__name__ in policy.SAFE_EXCEPTIONS:
            return klass.__name__
    return "Exception"


_SCALARS = (bool, int, float, str)
_AS_TEXT = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal,
            fractions.Fraction, uuid.UUID, enum.Enum)
#: Standard-library containers copied by value (their contents are checked too).
_STDLIB_CONTAINERS: dict[type, type] = {
    collections.OrderedDict: dict, collections.defaultdict: dict,
    collections.Counter: dict, collections.deque: list,
}


def _is_plain_value(value: object, budget: list[int], depth: int = 0) -> bool:
    budget[0] -= 1
    if budget[0] < 0 or depth > 4:
        return False
    tp = type(value)
    if tp in policy.WRITABLE_SCALARS:
        return tp is not str or len(value) <= policy.MAX_WRITE_CHARS  # type: ignore[arg-type]
    return tp is tuple and all(_is_plain_value(v, budget, depth + 1) for v in value)  # type: ignore[attr-defined]


def is_plain_setting(value: object) -> bool:
    """Whether ``value`` is data a script may assign to a host attribute."""
    return _is_plain_value(value, [policy.MAX_WRITE_ITEMS])


def _finite(value: object) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is not tuple or all(_finite(v) for v in value)


Shape = object  # None, "number", a type's name, or ("tuple", frozenset of item shapes)


def _shape(value: object) -> Shape:
    """What a tuple item of a setting may be replaced by: ``None`` (anything), a number (int
    or float), the same type, or a tuple whose items fit the shapes of this one's."""
    if value is None:
        return None
    if type(value) in (int, float):
        return "number"
    if type(value) is tuple:
        return ("tuple", frozenset(_shape(item) for item in value))
    return type(value).__name__


def _fits(shapes: frozenset[Shape], item: object) -> bool:
    if None in shapes:
        return True  # an item that was None takes anything
    if type(item) is tuple:
        return any(isinstance(shape, tuple) and (not shape[1] or all(
            _fits(shape[1], part) for part in item))
            for shape in shapes)
    return _shape(item) in shapes


def _tuple_change(old: tuple[object, ...], new: tuple[object, ...]) -> Refused | None:
    """A tuple setting keeps the types of its items: each new item has the type of an old
    one (an empty tuple or ``None`` items take anything). The old items are reduced to their
    distinct shapes first, so a check costs about one step per new item, not old x new."""
    if not old:
        return None
    shapes = frozenset(_shape(before) for before in old)
    for item in new:
        if not _fits(shapes, item):
            return Refused("TypeError", f"a {type(item).__name__!r} item would change the "
                           "types its items have")
    return None


def type_change(old: object, new: object) -> Refused | None:
    """Why assigning ``new`` over ``old`` would change the setting's type, if it would.

    The type stays: int and float may replace each other (bool is neither), ``None``
    only replaces ``None``, and an attribute holding ``None`` takes any plain value.
    """
    if not _finite(new):
        return Refused("ValueError", "floats must be finite")
    if type(old) is float and type(new) is int and abs(new) > sys.float_info.max:
        return Refused("ValueError", "the integer is too large for a float setting")
    if old is None:
        return None
    if type(old) is tuple and type(new) is tuple:
        return _tuple_change(old, new)
    if type(old) is type(new):
        return None
    if type(old) in (int, float) and type(new) in (int, float):
        return None
    shown = "None" if new is None else f"a {type(new).__name__!r} value"
    return Refused("TypeError", f"it holds a {type(old).__name__!r} value; {shown} would "
                   "change its type")


class HostBridge:
    """The handle table and request dispatcher of one script run."""

    def __init__(self, app: object, host_packages: Iterable[str] = (),
                 collisions: CollisionGuard | None = None) -> None:
        self.origin = HostOrigin.for_app(app, host_packages)
        #: what the worker's scripts have handed the host, by hash (shared across runs)
        self.collisions = collisions if collisions is not None else CollisionGuard()
        #: items of the arguments this run has handed the host, all requests together
        self.items_received = 0
        self.renderer = SafeRepr(self.origin)
        self.objects: list[object] = [AppView(app)]
        self.paths: list[str] = ["app"]
        self.index: dict[int, int] = {id(app): 0}
        self.calls = 0
        #: the first MAX_WRITE_RECORDS writes of the run, and how many more there were
        self.writes: list[dict[str, str]] = []
        self.writes_omitted = 0
        self._deadline: float | None = None
        self._arguments = protocol.Budget(None, None, policy.MAX_REQUEST_ITEMS)
        self._ops: dict[str, Callable[[object, int, dict[str, Any]], object]] = {
            "getattr": self._getattr,
            "setattr": self._setattr,
            "call": self._call,
            "getitem": self._getitem,
            "len": self._len,
            "bool": self._bool,
            "contains": self._contains,
            "iter": self._iter,
            "str": self._render,
            "repr": self._render,
        }

    # -- entry point ---------------------------------------------------------------------
    def handle(self, message: dict[str, Any], deadline: float | None = None
               ) -> dict[str, Any]:
        """Answer one request: ``{"ok": value}`` or ``{"err": [kind, message]}``.

        Raises :class:`protocol.Expired` when ``deadline`` passes meanwhile.
        """
        self.calls += 1
        self._deadline = deadline
        # one budget for all the arguments of this request (items and hash work)
        self._arguments = protocol.Budget(None, deadline, policy.MAX_REQUEST_ITEMS)
        if deadline is not None and time.monotonic() > deadline:
            raise protocol.Expired()
        try:
            op = self._ops.get(message.get("op"))  # type: ignore[arg-type]
            if op is None:
                raise Refused("TypeError", "unknown operation")
            handle = message.get("h")
            target = self._resolve(handle)
            assert type(handle) is int
            result = op(target, handle, message)
            reply = {"ok": self.encode(result, self._child_path(handle, message))}
        except Refused as exc:
            return {"err": [exc.kind, str(exc)[:policy.MAX_ERROR_CHARS]]}
        except protocol.DataLimit as exc:
            return {"err": ["ValueError", str(exc)]}
        except protocol.Expired:
            raise
        except Exception as exc:  # the host raised: message only, never a traceback
            return {"err": [_exception_kind(exc), _message(exc)]}
        finally:
            self.items_received += self._arguments.items
        return reply

    def write_records(self) -> list[dict[str, str]]:
        """The writes for an audit record: at most MAX_WRITE_RECORDS, then a count."""
        if not self.writes_omitted:
            return list(self.writes)
        return [*self.writes, {"omitted": str(self.writes_omitted)}]

    # -- handles -------------------------------------------------------------------------
    def _resolve(self, handle: object) -> object:
        if type(handle) is not int or not 0 <= handle < len(self.objects):
            raise Refused("TypeError", "invalid handle")
        return self.objects[handle]

    def _child_path(self, handle: int, message: dict[str, Any]) -> str:
        base = self.paths[handle]
        op = message.get("op")
        if op == "getattr":
            return f"{base}.{message.get('name')}"
        if op == "call":
            return f"{base}()"
        return f"{base}[...]"

    def _handle_of(self, value: object, path: str) -> int:
        if not self.origin.object_ok(value):
            raise Refused(
                "AttributeError",
                f"{type(value).__name__!r} objects are not accessible from scripts",
            )
        handle = self.index.get(id(value))
        if handle is None or self.objects[handle] is not value:
            if len(path) > policy.MAX_PATH_CHARS:
                raise Refused(
                    "ValueError",
                    f"the path to this host object is longer than {policy.MAX_PATH_CHARS} "
                    f"characters ({path[:48]}...): reach it in fewer steps")
            handle = len(self.objects)
            self.objects.append(value)
            self.paths.append(path)
            self.index[id(value)] = handle
        return handle

    def encode(self, value: object, path: str = "app.?") -> object:
        budget = protocol.Budget(policy.MAX_REPLY_BYTES, self._deadline)
        return protocol.encode(value, lambda v: self._handle_of(v, path), self._plain, budget)

    def _plain(self, value: object) -> object:
        """Standard-library data as plain data; host objects and the rest unchanged.

        The origin is checked first: a framework container (``flask.Config``, a dict
        subclass) is never copied, it is refused as an object.
        """
        tp = type(value)
        if tp not in _SCALARS and isinstance(value, _SCALARS) and not (
                _stdlib(tp) or self.origin.class_ok(tp)):
            return value  # a third party's str or int subclass (a masked secret): an object
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)  # an IntEnum member travels as its value
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return "".join((value,))
        if isinstance(value, _AS_TEXT):
            return str(value)
        if self.origin.class_ok(tp):
            return value  # a host object: a handle
        build = _STDLIB_CONTAINERS.get(tp)
        if build is not None:
            return build(value)
        if isinstance(value, tuple) and _stdlib(tp):
            return tuple(value)  # struct_time, a standard-library named tuple
        return value

    def decode(self, data: object) -> Any:
        try:
            value = protocol.decode(data, self._resolve_argument, budget=self._arguments,
                                    untrusted=True)
        except protocol.DataLimit:
            raise
        except (ValueError, TypeError) as exc:
            raise Refused("TypeError", f"bad argument: {exc}") from None
        chosen, self._arguments.chosen = self._arguments.chosen, []
        self.collisions.admit(chosen)
        return value

    def _resolve_argument(self, handle: int) -> object:
        value = self._resolve(handle)
        if isinstance(value, AppView):
            raise Refused("TypeError", "app cannot be passed to the host")
        return value

    # -- attribute policy ----------------------------------------------------------------
    def _read(self, obj: object, name: str) -> object:
        """The value of public attribute ``name`` of host object ``obj``, or refuse."""
        kind = type(obj).__name__
        if name.startswith("_"):
            raise Refused("AttributeError",
                          f"access to attribute {name!r} of {kind!r} objects is not allowed")
        klass, found = definer(obj, name)
        instance = _instance_dict(obj)
        data_descriptor = klass is not None and hasattr(type(found), "__set__")
        if instance is not None and name in instance and not data_descriptor:
            return instance[name]
        if klass is None or klass is object:
            raise Refused("AttributeError", f"{kind!r} object has no attribute {name!r}")
        if not self.origin.defines(klass):
            raise self._inherited(obj, klass, name)
        return getattr(obj, name)

    def _inherited(self, obj: object, klass: type, name: str) -> Refused:
        return Refused(
            "AttributeError",
            f"{name!r} of {type(obj).__name__!r} objects comes from {klass.__name__!r}, "
            "which is not host code: it is not accessible from scripts")

    def _special_ok(self, obj: object, dunder: str) -> bool:
        """Whether ``dunder`` of ``obj`` is host code or a bounded builtin operation."""
        if isinstance(obj, AppView):
            return False
        klass, _ = definer(obj, dunder)
        if klass is None or klass is object:
            return False
        if klass in PLAIN_BASES:
            return dunder in _BOUNDED_SPECIALS
        return self.origin.defines(klass)

    def _refuse_special(self, obj: object, what: str) -> Refused:
        kind = "app" if isinstance(obj, AppView) else f"{type(obj).__name__!r} object"
        return Refused("TypeError", f"{kind} {what}")

    # -- operations (each checks its policy before decoding any argument) ----------------
    def _getattr(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        name = message.get("name")
        if type(name) is not str or len(name) > 200:
            raise Refused("TypeError", "attribute name must be a short string")
        if isinstance(obj, AppView):
            if name not in policy.APP_ATTRIBUTES:
                raise Refused("AttributeError", f"app attribute {name!r} is not accessible")
            return getattr(obj.app, name)
        return self._read(obj, name)

    def _setattr(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        """Assign plain data to an existing plain-data public attribute of a host object."""
        name = message.get("name")
        if type(name) is not str or len(name) > 200:
            raise Refused("TypeError", "attribute name must be a short string")
        path = f"{self.paths[handle]}.{name}"
        if isinstance(obj, AppView):
            raise Refused("AttributeError", f"cannot set {path}: app is read-only")
        if name.startswith("_"):
            raise Refused("AttributeError", f"cannot set {path}: names starting with '_' "
                          "are not accessible")
        if not self.origin.class_ok(type(obj)):
            raise Refused("AttributeError", f"cannot set {path}: not a host object")
        try:
            old = self._read(obj, name)
        except Refused as exc:
            if "has no attribute" in str(exc):
                raise Refused("AttributeError",
                              f"cannot set {path}: scripts may only change existing "
                              "attributes") from None
            raise Refused("AttributeError", f"cannot set {path}: {exc}") from None
        if not is_plain_setting(old):
            raise Refused("TypeError", f"cannot set {path}: it holds a "
                          f"{type(old).__name__!r} object, not a plain setting")
        raw = message.get("value")
        refusal = Refused("TypeError", f"cannot set {path}: only None, bool, int, float, str "
                          f"(up to {policy.MAX_WRITE_CHARS} characters) and tuples of them "
                          f"(up to {policy.MAX_WRITE_ITEMS} items) can be assigned")
        if isinstance(raw, dict) and raw.get("t") != "tuple":
            raise refusal
        value = self.decode(raw)
        if not is_plain_setting(value):
            raise refusal
        changed = type_change(old, value)
        if changed is not None:
            raise Refused(changed.kind, f"cannot set {path}: {changed}")
        setattr(obj, name, value)
        if len(self.writes) < policy.MAX_WRITE_RECORDS:
            self.writes.append({"path": path, "old": type(old).__name__,
                                "new": type(value).__name__})
        else:
            self.writes_omitted += 1
        return None

    def _call(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if isinstance(obj, AppView) or not callable(obj):
            raise self._refuse_special(obj, "is not callable")
        if not isinstance(obj, (types.MethodType, types.FunctionType)) and not (
            self._special_ok(obj, "__call__")
        ):
            raise self._refuse_special(obj, "is not callable")
        raw_args, kwargs = message.get("args", []), message.get("kwargs", [])
        if not isinstance(raw_args, list) or not isinstance(kwargs, list):
            raise Refused("TypeError", "bad call")
        args = self.decode({"t": "list", "v": raw_args})
        named: dict[str, object] = {}
        for pair in kwargs:
            if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is str):
                raise Refused("TypeError", "bad keyword argument")
            named[pair[0]] = self.decode(pair[1])
        return obj(*args, **named)

    def _getitem(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if not self._special_ok(obj, "__getitem__"):
            raise self._refuse_special(obj, "is not subscriptable")
        return obj[self.decode(message.get("key"))]  # type: ignore[index]

    def _contains(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if not self._special_ok(obj, "__contains__"):
            raise self._refuse_special(obj, "does not support 'in'")
        return self.decode(message.get("item")) in obj  # type: ignore[operator]

    def _len(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if not self._special_ok(obj, "__len__"):
            raise self._refuse_special(obj, "has no len()")
        return len(obj)  # type: ignore[arg-type]

    def _bool(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if self._special_ok(obj, "__bool__"):
            return bool(obj)
        if self._special_ok(obj, "__len__"):
            return len(obj) != 0  # type: ignore[arg-type]
        return True

    def _iter(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if not self._special_ok(obj, "__iter__"):
            raise self._refuse_special(obj, "is not iterable")
        items = list(itertools.islice(iter(obj), policy.MAX_DATA_ITEMS + 1))  # type: ignore[call-overload]
        if len(items) > policy.MAX_DATA_ITEMS:
            raise Refused("ValueError", "too many items to iterate from the host")
        return items

    # -- str() and repr() ----------------------------------------------------------------
    def _render(self, obj: object, handle: int, message: dict[str, Any]) -> object:
        if isinstance(obj, AppView):
            return f"<app {getattr(obj.app, 'name', '?')!r}>"
        return self.renderer.render(obj, as_str=message.get("op") == "str")


def _stdlib(cls: type) -> bool:
    module = getattr(cls, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in sys.stdlib_module_names


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text[:policy.MAX_ERROR_CHARS]
