"""Child side of the host bridge: :class:`Remote` stands for an object of the worker.

A script never holds a real host object. ``app`` and everything reached from it
is a :class:`Remote` whose every operation is a request to the worker
(:mod:`.proxy`), which performs it on the live object under the host policy and
answers plain data or a further handle. This module runs in the child only.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from . import protocol
from .policy import MAX_REQUEST_ITEMS

#: Sends one request to the worker and returns its decoded reply; set by the child.
Transport = Callable[[dict[str, Any]], Any]

_transport: Transport | None = None
_remotes: dict[int, Remote] = {}


def install(transport: Transport) -> None:
    """Route every :class:`Remote` operation through ``transport``."""
    global _transport
    _transport = transport


def _request(op: str, handle: int, **fields: Any) -> Any:
    if _transport is None:
        raise RuntimeError("the host is not reachable")
    message: dict[str, Any] = {"op": op, "h": handle}
    message.update(fields)
    reply = _transport(message)
    if "err" in reply:
        name, text = reply["err"]
        exc_class = getattr(builtins, str(name), None)
        if not (isinstance(exc_class, type) and issubclass(exc_class, Exception)):
            exc_class = Exception
        raise exc_class(str(text))
    return protocol.decode(reply.get("ok"), remote_for)


def remote_for(handle: int) -> Remote:
    """The one :class:`Remote` of ``handle`` (identity is kept per handle)."""
    remote = _remotes.get(handle)
    if remote is None:
        remote = _remotes[handle] = Remote(handle)
    return remote


def encode_arg(value: object) -> object:
    """Encode a value a script passes to the host: plain data and remotes only."""
    budget = protocol.Budget(max_items=MAX_REQUEST_ITEMS)
    return protocol.encode(value, _handle_of, budget=budget)


def _handle_of(value: object) -> int:
    if type(value) is Remote:
        return value._handle
    raise TypeError(f"'{type(value).__name__}' objects cannot be passed to the host")


def refuse_copy(self: object, *args: object) -> NoReturn:
    """What the sandbox's own objects answer to copy, deepcopy and pickle."""
    raise TypeError(f"{type(self).__name__} objects cannot be copied or pickled")


class Remote:
    """A host object seen from a script. It has no attributes of its own."""

    __slots__ = ("_handle",)

    def __init__(self, handle: int) -> None:
        self._handle = handle

    def __call__(self, *args: object, **kwargs: object) -> object:
        return _request(
            "call", self._handle,
            args=[encode_arg(a) for a in args],
            kwargs=[[k, encode_arg(v)] for k, v in kwargs.items()],
        )

    def __getitem__(self, key: object) -> object:
        return _request("getitem", self._handle, key=encode_arg(key))

    def __len__(self) -> int:
        return int(_request("len", self._handle))

    def __bool__(self) -> bool:
        return bool(_request("bool", self._handle))

    def __contains__(self, item: object) -> bool:
        return bool(_request("contains", self._handle, item=encode_arg(item)))

    def __iter__(self) -> Iterator[object]:
        items = _request("iter", self._handle)
        return iter(items if isinstance(items, list) else [])

    def __str__(self) -> str:
        return str(_request("str", self._handle))

    def __repr__(self) -> str:
        return str(_request("repr", self._handle))

    __copy__ = __deepcopy__ = __reduce__ = __reduce_ex__ = refuse_copy


def remote_getattr(remote: Remote, name: str) -> object:
    """Read attribute ``name`` of the host object behind ``remote``."""
    return _request("getattr", remote._handle, name=name)


_SETTING_TYPES = (type(None), bool, int, float, str)


def _setting(value: object) -> bool:
    if type(value) in _SETTING_TYPES:
        return True
    return type(value) is tuple and all(_setting(v) for v in value)


class RemoteWriter:
    """What ``_write_`` gives for a host object: ``obj.attr = value`` becomes a request.

    The worker decides (:meth:`.proxy.HostBridge._setattr`): plain data to an
    existing plain-data public attribute of a host object, recorded; anything else
    is refused there and changes nothing. Reads (``obj.attr += 1``) are forwarded.
    """

    __slots__ = ("_target",)

    def __init__(self, target: Remote) -> None:
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> object:
        return remote_getattr(object.__getattribute__(self, "_target"), name)

    def __setattr__(self, name: str, value: object) -> None:
        if not _setting(value):
            kind = "host" if type(value) is Remote else repr(type(value).__name__)
            raise TypeError(
                f"cannot set {name!r} to a {kind} object: only None, bool, "
                "int, float, str and tuples of them can be assigned to host attributes")
        target: Remote = object.__getattribute__(self, "_target")
        _request("setattr", target._handle, name=name, value=encode_arg(value))

    def __delattr__(self, name: str) -> None:
        raise TypeError("scripts cannot delete attributes of host objects")

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError("scripts cannot store items in host objects: set an attribute "
                        "or call a method")

    def __delitem__(self, key: object) -> None:
        raise TypeError("scripts cannot delete items of host objects")
