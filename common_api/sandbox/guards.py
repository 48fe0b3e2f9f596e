"""Runtime guards of the script's child process: the type-based attribute policy.

Every attribute read of a script goes through one function, which decides by the
*type* of the object, never by a list of dangerous names:

* plain data (``str``, ``list``, ``dict``...) exposes the methods listed in
  :data:`policy.DATA_ATTRS` (``str.format`` is not among them);
* a :class:`ModuleFacade` exposes the vetted exports of an allowed module;
* a :class:`~.remote.Remote` forwards the read to the worker's host policy;
* the script's own classes and instances expose what the script defined
  (inherited exception attributes: ``args`` only);
* vetted classes of allowed modules (``datetime.datetime``, ``re.Match``...) expose
  what :data:`policy.VETTED_CLASSES` lists: constructors and constants on the class,
  methods and data on instances (an unbound method would accept any ``self``);
* everything else (functions, modules, type objects, frames, generators' frames,
  exception internals...) exposes nothing.

The builtins a script gets are closures over the state of its run (the grant, the
vetted classes, the script's classes): no object of the guard is reachable, so none
can be copied, pickled or changed, and every import is checked against the grant the
settings made. This module runs in the child only.
"""

from __future__ import annotations
import __future__

import builtins
import copy
import importlib
from collections.abc import Callable
from types import (
    BuiltinFunctionType,
    FunctionType,
    GeneratorType,
    MappingProxyType,
    MethodType,
    ModuleType,
)
from typing import Any

from . import policy
from .imports import ImportGrant, importable
from .protocol import escape
from .remote import Remote, RemoteWriter, refuse_copy, remote_getattr

__all__ = ["ImportBlocked", "ModuleFacade", "OutputCapture", "importable", "script_builtins",
           "vetted_classes"]


class ImportBlocked(ImportError):
    """An import the policy refuses; reported as its message alone."""


def _denied(obj: object, name: object) -> AttributeError:
    kind = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    return AttributeError(f"access to attribute {name!r} of {kind!r} objects is not allowed")


def _is_constant(value: object, depth: int = 0) -> bool:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if isinstance(value, (tuple, frozenset)) and depth < 3 and len(value) <= 1000:
        return all(_is_constant(v, depth + 1) for v in value)
    return False


class ModuleFacade:
    """What ``import <allowed module>`` gives a script: vetted exports only."""

    __slots__ = ("_exports", "_name")

    def __init__(self, name: str, exports: dict[str, object]) -> None:
        self._name = name
        self._exports = MappingProxyType(dict(exports))

    def __getattr__(self, name: str) -> object:  # used by ``from m import x`` only
        if not name.startswith("_") and name in self._exports:
            return self._exports[name]
        raise AttributeError(f"module {self._name!r} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<module {self._name!r} (sandboxed)>"

    __copy__ = __deepcopy__ = __reduce__ = __reduce_ex__ = refuse_copy


class StrptimeForC:
    """What ``time.strptime`` and ``datetime.strptime`` get when their C code imports
    ``_strptime`` (through the script's builtins, so the guarded import): its two entry
    points and nothing else of that module (its ``locale``, ``re``, ``_thread``...)."""

    __slots__ = ()

    @staticmethod
    def _strptime_time(data_string: str, format: str = "%a %b %d %H:%M:%S %Y") -> object:
        strptime = importlib.import_module("_strptime")
        return strptime._strptime_time(data_string, format)

    @staticmethod
    def _strptime_datetime(cls: type, data_string: str,
                           format: str = "%a %b %d %H:%M:%S %Y") -> object:
        strptime = importlib.import_module("_strptime")
        return strptime._strptime_datetime(cls, data_string, format)

    def __repr__(self) -> str:
        return "<module '_strptime' (sandboxed)>"

    __copy__ = __deepcopy__ = __reduce__ = __reduce_ex__ = refuse_copy


_STRPTIME_USERS = frozenset({"time", "datetime"})


class OutputCapture:
    """A write-only text sink that keeps at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[str] = []
        self.truncated = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str")
        if self.truncated:
            return len(text)
        text = escape(text)
        data = text.encode("utf-8")
        room = self.limit - self.size
        if len(data) > room:
            data = data[:max(room, 0)]
            text = data.decode("utf-8", "ignore")
            self.truncated = True
        self.size += len(data)
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        return None

    def getvalue(self) -> str:
        return "".join(self.parts)


def vetted_classes(granted: ImportGrant) -> dict[type, policy.VettedClass]:
    """The vetted classes of the granted modules (importing them), by class."""
    found: dict[type, policy.VettedClass] = {}
    for module_name in granted.modules:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            continue
        for (owner, attr), vetted in policy.VETTED_CLASSES.items():
            cls = getattr(module, attr, None) if owner == module_name else None
            if isinstance(cls, type):
                found[cls] = vetted
        for (owner, factory), names in policy.VETTED_RESULT_TYPES.items():
            make = getattr(module, factory, None) if owner == module_name else None
            if callable(make):
                try:
                    found[type(make())] = policy.VettedClass(frozenset(), names)
                except Exception:
                    continue
    return found


_CALLABLES = (FunctionType, BuiltinFunctionType, MethodType)


def _wrapped(module: str, name: str) -> object:
    if (module, name) == ("copy", "deepcopy"):
        def deepcopy(value: object) -> object:
            """A deep copy of ``value`` (the sandbox accepts no ``memo``)."""
            return copy.deepcopy(value)
        return deepcopy
    raise KeyError((module, name))


def _exports(name: str, module: ModuleType, members: frozenset[str],
             vetted: dict[type, policy.VettedClass]) -> dict[str, object]:
    """The members of ``module`` a script gets: functions, constants, vetted classes and
    instances, exception classes; nothing else even when granted."""
    exports: dict[str, object] = {}
    for attr in sorted(members):
        value = getattr(module, attr, _exports)
        if value is _exports or isinstance(value, ModuleType):
            continue
        if (name, attr) in policy.WRAPPED_EXPORTS:
            exports[attr] = _wrapped(name, attr)
        elif isinstance(value, type):
            if value in vetted or issubclass(value, BaseException):
                exports[attr] = value
        elif isinstance(value, _CALLABLES) or _is_constant(value) or type(value) in vetted:
            exports[attr] = value
        elif isinstance(value, (set, frozenset)) and _is_constant(frozenset(value)):
            exports[attr] = frozenset(value)
    return exports


def script_builtins(granted: ImportGrant, output: OutputCapture) -> dict[str, object]:
    """The builtins of one script run: every guard a closure over this run's state."""
    vetted = vetted_classes(granted)
    script_classes: set[type] = set()
    writable: set[type] = set(policy.WRITABLE_DATA)
    for owner, attr in policy.WRITABLE_VETTED:
        if owner in granted.modules:
            cls = builtins.getattr(importlib.import_module(owner), attr, None)
            if isinstance(cls, type):
                writable.add(cls)
    facades: dict[str, ModuleFacade] = {}
    # the policy as it is now, held by the closures (nothing reads the module later)
    data_attrs = policy.DATA_ATTRS
    script_dunders, generator_attrs = policy.SCRIPT_DUNDERS, policy.GENERATOR_ATTRS
    exception_attrs = policy.EXCEPTION_ATTRS
    exception_members = policy.EXCEPTION_ATTRS | policy.EXCEPTION_DUNDERS

    def script_attr(obj: object, cls: type, name: str) -> object:
        if obj is not cls:
            try:
                instance_dict = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                instance_dict = None
            if isinstance(instance_dict, dict) and name in instance_dict:
                return instance_dict[name]
        for klass in cls.__mro__:
            if name in klass.__dict__:
                if klass in script_classes:
                    return builtins.getattr(obj, name)
                if issubclass(klass, BaseException) and name in exception_members:
                    value = builtins.getattr(obj, name)
                    if obj is cls and isinstance(value, FunctionType):
                        break  # a module's exception's __init__ would accept any self
                    return value
                raise _denied(obj, name)
        else:
            raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")
        raise _denied(obj, name)

    def dunder(obj: object, tp: type, name: str) -> object:
        """``Base.__init__(self, ...)`` and friends, on the script's classes only."""
        if name in script_dunders:
            if tp in script_classes:
                return script_attr(obj, tp, name)
            if isinstance(obj, type) and (
                obj in script_classes or issubclass(obj, BaseException)
            ):
                return script_attr(obj, obj, name)
        raise _denied(obj, name)

    def read(obj: object, name: str) -> object:
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        tp = type(obj)
        allowed = data_attrs.get(tp)
        if allowed is not None:
            if name in allowed:
                return builtins.getattr(obj, name)
            raise _denied(obj, name)
        if name.startswith("_"):
            return dunder(obj, tp, name)
        if tp is Remote:
            return remote_getattr(obj, name)  # type: ignore[arg-type]
        if tp is ModuleFacade:
            exports = object.__getattribute__(obj, "_exports")
            if name in exports:
                return exports[name]
            module = object.__getattribute__(obj, "_name")
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if tp in script_classes:
            return script_attr(obj, tp, name)
        if isinstance(obj, type):
            if obj in script_classes:
                return script_attr(obj, obj, name)
            data = data_attrs.get(obj)
            vetted_class = vetted.get(obj)
            if not ((data is not None and name in data) or (
                    vetted_class is not None and name in vetted_class.on_class)):
                raise _denied(obj, name)
            value = builtins.getattr(obj, name)
            if isinstance(value, FunctionType):  # unbound: it would accept any self
                raise _denied(obj, name)
            return value
        vetted_class = vetted.get(tp)
        if vetted_class is not None:
            if name in vetted_class.on_instance:
                return builtins.getattr(obj, name)
            raise _denied(obj, name)
        if tp is GeneratorType and name in generator_attrs:
            return builtins.getattr(obj, name)
        if isinstance(obj, BaseException) and name in exception_attrs:
            return obj.args
        raise _denied(obj, name)

    def getattr(obj: object, name: str, *default: object) -> object:
        try:
            return read(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise

    def hasattr(obj: object, name: str) -> bool:
        try:
            read(obj, name)
        except AttributeError:
            return False
        return True

    def write(obj: object) -> object:
        tp = type(obj)
        if tp in writable or tp in script_classes or obj in script_classes:
            return obj
        if tp is Remote:
            return RemoteWriter(obj)  # type: ignore[arg-type]
        kind = obj.__name__ if isinstance(obj, type) else tp.__name__
        raise TypeError(f"{kind!r} objects cannot be modified by a script")

    def setattr(obj: object, name: str, value: object) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"cannot set attribute {name!r}")
        builtins.setattr(write(obj), name, value)

    def delattr(obj: object, name: str) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"cannot delete attribute {name!r}")
        builtins.delattr(write(obj), name)

    def make_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        for base in bases:
            if not isinstance(base, type) or not (
                base in script_classes or issubclass(base, BaseException)
            ):
                raise TypeError(
                    f"class {name} may only derive from the script's classes or exceptions"
                )
        cls = type(name, bases, namespace)
        script_classes.add(cls)
        return cls

    def facade(name: str) -> ModuleFacade:
        found = facades.get(name)
        if found is None:
            module = importlib.import_module(name)
            exports = _exports(name, module, granted.modules[name], vetted)
            found = facades[name] = ModuleFacade(name, exports)
        return found

    def import_(name: str, globals: object = None, locals: object = None,
                fromlist: object = (), level: int = 0) -> ModuleFacade:
        if level != 0 or type(name) is not str:
            raise ImportBlocked("Relative imports are not allowed")
        if name == "__future__":
            return ModuleFacade(name, {f: f for f in __future__.all_feature_names})
        if name == "_strptime" and not _STRPTIME_USERS.isdisjoint(granted.modules):
            return StrptimeForC()  # type: ignore[return-value]
        if name not in granted.modules:
            raise ImportBlocked(f"Import of {name!r} is not allowed")
        found = facade(name)
        if fromlist or "." not in name:
            return found
        # ``import a.b`` binds ``a``: a facade holding only the chain down to ``a.b``.
        parts = name.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:depth])
            parent = facade(prefix) if prefix in granted.modules else None
            exports = dict(object.__getattribute__(parent, "_exports")) if parent else {}
            exports[parts[depth]] = found
            found = ModuleFacade(prefix, exports)
        return found

    def print(*args: object, sep: str | None = " ", end: str | None = "\n",
              file: object = None, flush: bool = False) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not supported in scripts")
        builtins.print(*args, sep=sep, end=end, file=output)

    table: dict[str, object] = {name: builtins.__dict__[name] for name in policy.SAFE_BUILTINS}
    for name in policy.SAFE_EXCEPTIONS:
        table[name] = builtins.__dict__[name]
    apply: Callable[..., object] = _apply
    table.update({
        "getattr": getattr,
        "hasattr": hasattr,
        "setattr": setattr,
        "delattr": delattr,
        "print": print,
        "__import__": import_,
        "__build_class__": builtins.__build_class__,
        "__metaclass__": make_class,
        "_getattr_": getattr,
        "_write_": write,
        "_getitem_": _getitem,
        "_getiter_": iter,
        "_apply_": apply,
    })
    return table


def _getitem(obj: Any, key: object) -> object:
    return obj[key]


def _apply(func: Callable[..., object], *args: object, **kwargs: object) -> object:
    return func(*args, **kwargs)
