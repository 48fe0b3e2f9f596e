"""Runtime guards of the script's child process: the type-based attribute policy.

Every attribute read of a script goes through :meth:`Guards.getattr`, which decides
by the *type* of the object, never by a list of dangerous names:

* plain data (``str``, ``list``, ``dict``...) exposes the methods listed in
  :data:`policy.DATA_ATTRS` (``str.format`` is not among them);
* a :class:`ModuleFacade` exposes the vetted exports of an allowed module;
* a :class:`~.remote.Remote` forwards the read to the worker's host policy;
* the script's own classes and instances expose what the script defined
  (inherited exception attributes: ``args`` only);
* vetted classes of allowed modules (``datetime.datetime``, ``re.Match``...)
  expose the attributes listed in :data:`policy.VETTED_TYPES`;
* everything else (functions, modules, type objects, frames, generators' frames,
  exception internals...) exposes nothing.

This module runs in the child only.
"""

from __future__ import annotations
import __future__

import builtins
import importlib
from collections.abc import Callable, Iterable
from types import BuiltinFunctionType, FunctionType, GeneratorType, MethodType, ModuleType
from typing import Any

from . import policy
from .protocol import escape
from .remote import Remote, RemoteWriter, remote_getattr


class ImportBlocked(ImportError):
    """An import the policy refuses; reported as its message alone."""


def _denied(obj: object, name: object) -> AttributeError:
    kind = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    return AttributeError(f"access to attribute {name!r} of {kind!r} objects is not allowed")


def _origin(value: object) -> str:
    module = getattr(value, "__module__", None)
    return module.split(".")[0].lstrip("_") if isinstance(module, str) else ""


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
        self._exports = exports

    def __getattr__(self, name: str) -> object:  # used by ``from m import x`` only
        if not name.startswith("_") and name in self._exports:
            return self._exports[name]
        raise AttributeError(f"module {self._name!r} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<module {self._name!r} (sandboxed)>"


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


class Guards:
    """The guarded builtins of one script run."""

    def __init__(self, allowed_imports: Iterable[str], output: OutputCapture) -> None:
        self.allowed = frozenset(m for m in allowed_imports if importable(m))
        self.output = output
        self.script_classes: set[type] = set()
        self.vetted: dict[type, frozenset[str]] = {}
        self.writable: set[type] = set(policy.WRITABLE_DATA)
        self.facades: dict[str, ModuleFacade] = {}
        for name in self.allowed:
            self._register_vetted(name)

    # -- vetted types -------------------------------------------------------------------
    def _register_vetted(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return
        for (mod, attr), names in policy.VETTED_TYPES.items():
            cls = getattr(module, attr, None) if mod == module_name else None
            if isinstance(cls, type):
                self.vetted[cls] = names
                if (mod, attr) in policy.WRITABLE_VETTED:
                    self.writable.add(cls)
        for (mod, factory), names in policy.VETTED_RESULT_TYPES.items():
            make = getattr(module, factory, None) if mod == module_name else None
            if callable(make):
                try:
                    self.vetted[type(make())] = names
                except Exception:
                    continue

    # -- attribute reads ----------------------------------------------------------------
    def getattr(self, obj: object, name: str, *default: object) -> object:
        try:
            return self._getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise

    def _getattr(self, obj: object, name: str) -> object:
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        tp = type(obj)
        allowed = policy.DATA_ATTRS.get(tp)
        if allowed is not None:
            if name in allowed:
                return getattr(obj, name)
            raise _denied(obj, name)
        if name.startswith("_"):
            return self._dunder(obj, tp, name)
        if tp is Remote:
            return remote_getattr(obj, name)  # type: ignore[arg-type]
        if tp is ModuleFacade:
            exports = obj._exports  # type: ignore[attr-defined]
            if name in exports:
                return exports[name]
            raise AttributeError(f"module {obj._name!r} has no attribute {name!r}")  # type: ignore[attr-defined]
        if tp in self.script_classes:
            return self._script_attr(obj, tp, name)
        if isinstance(obj, type):
            if obj in self.script_classes:
                return self._script_attr(obj, obj, name)
            allowed = policy.DATA_ATTRS.get(obj) or self.vetted.get(obj)
            if allowed is not None and name in allowed:
                return getattr(obj, name)
            raise _denied(obj, name)
        allowed = self.vetted.get(tp)
        if allowed is not None:
            if name in allowed:
                return getattr(obj, name)
            raise _denied(obj, name)
        if tp is GeneratorType and name in policy.GENERATOR_ATTRS:
            return getattr(obj, name)
        if isinstance(obj, BaseException) and name in policy.EXCEPTION_ATTRS:
            return obj.args
        raise _denied(obj, name)

    def _dunder(self, obj: object, tp: type, name: str) -> object:
        """``Base.__init__(self, ...)`` and friends, on the script's classes only."""
        if name in policy.SCRIPT_DUNDERS:
            if tp in self.script_classes:
                return self._script_attr(obj, tp, name)
            if isinstance(obj, type) and (
                obj in self.script_classes or issubclass(obj, BaseException)
            ):
                return self._script_attr(obj, obj, name)
        raise _denied(obj, name)

    def _script_attr(self, obj: object, cls: type, name: str) -> object:
        if obj is not cls:
            try:
                instance_dict = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                instance_dict = None
            if isinstance(instance_dict, dict) and name in instance_dict:
                return instance_dict[name]
        for klass in cls.__mro__:
            if name in klass.__dict__:
                if klass in self.script_classes:
                    return getattr(obj, name)
                if issubclass(klass, BaseException) and (
                    name in policy.EXCEPTION_ATTRS or name in policy.EXCEPTION_DUNDERS
                ):
                    return getattr(obj, name)
                raise _denied(obj, name)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")

    def hasattr(self, obj: object, name: str) -> bool:
        try:
            self._getattr(obj, name)
        except AttributeError:
            return False
        return True

    # -- writes -------------------------------------------------------------------------
    def write(self, obj: object) -> object:
        tp = type(obj)
        if tp in self.writable or tp in self.script_classes or obj in self.script_classes:
            return obj
        if tp is Remote:
            return RemoteWriter(obj)  # type: ignore[arg-type]
        kind = obj.__name__ if isinstance(obj, type) else tp.__name__
        raise TypeError(f"{kind!r} objects cannot be modified by a script")

    def setattr(self, obj: object, name: str, value: object) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"cannot set attribute {name!r}")
        setattr(self.write(obj), name, value)

    def delattr(self, obj: object, name: str) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"cannot delete attribute {name!r}")
        delattr(self.write(obj), name)

    # -- classes ------------------------------------------------------------------------
    def make_class(self, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        for base in bases:
            if not isinstance(base, type) or not (
                base in self.script_classes or issubclass(base, BaseException)
            ):
                raise TypeError(
                    f"class {name} may only derive from the script's classes or exceptions"
                )
        cls = type(name, bases, namespace)
        self.script_classes.add(cls)
        return cls

    # -- imports ------------------------------------------------------------------------
    def import_(self, name: str, globals: object = None, locals: object = None,
                fromlist: object = (), level: int = 0) -> ModuleFacade:
        if level != 0 or type(name) is not str:
            raise ImportBlocked("Relative imports are not allowed")
        if name == "__future__":
            return ModuleFacade(name, {f: f for f in __future__.all_feature_names})
        if name not in self.allowed:
            raise ImportBlocked(f"Import of {name!r} is not allowed")
        facade = self.facade(name)
        if fromlist or "." not in name:
            return facade
        # ``import a.b`` binds ``a``: a facade holding only the chain down to ``a.b``.
        parts = name.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:depth])
            parent = self.facade(prefix) if prefix in self.allowed else None
            exports = dict(parent._exports) if parent else {}
            exports[parts[depth]] = facade
            facade = ModuleFacade(prefix, exports)
        return facade

    def facade(self, name: str) -> ModuleFacade:
        facade = self.facades.get(name)
        if facade is None:
            module = importlib.import_module(name)
            facade = self.facades[name] = ModuleFacade(name, self._exports(name, module))
        return facade

    def _exports(self, name: str, module: ModuleType) -> dict[str, object]:
        home = name.split(".")[0].lstrip("_")
        denied = policy.DENIED_EXPORTS.get(name, frozenset())
        exports: dict[str, object] = {}
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr in denied or isinstance(value, ModuleType):
                continue
            if isinstance(value, type):
                vetted = value in self.vetted
                if vetted or (issubclass(value, BaseException) and _origin(value) == home):
                    exports[attr] = value
            elif isinstance(value, (FunctionType, BuiltinFunctionType, MethodType)):
                if _origin(value) == home:
                    exports[attr] = value
            elif _is_constant(value):
                exports[attr] = value
        return exports

    # -- print --------------------------------------------------------------------------
    def print(self, *args: object, sep: str | None = " ", end: str | None = "\n",
              file: object = None, flush: bool = False) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not supported in scripts")
        builtins.print(*args, sep=sep, end=end, file=self.output)

    # -- the builtins dict --------------------------------------------------------------
    def builtins(self) -> dict[str, object]:
        table: dict[str, object] = {
            name: getattr(builtins, name) for name in policy.SAFE_BUILTINS
        }
        for name in policy.SAFE_EXCEPTIONS:
            table[name] = getattr(builtins, name)
        apply: Callable[..., object] = _apply
        table.update(
            {
                "getattr": self.getattr,
                "hasattr": self.hasattr,
                "setattr": self.setattr,
                "delattr": self.delattr,
                "print": self.print,
                "__import__": self.import_,
                "__build_class__": builtins.__build_class__,
                "__metaclass__": self.make_class,
                "_getattr_": self.getattr,
                "_write_": self.write,
                "_getitem_": _getitem,
                "_getiter_": iter,
                "_apply_": apply,
            }
        )
        return table


def importable(name: str) -> bool:
    """Whether an allowed-imports entry may be honoured at all (see NEVER_IMPORTABLE)."""
    parts = name.split(".")
    if not all(p.isidentifier() and not p.startswith("_") for p in parts):
        return False
    return not any(".".join(parts[:i]) in policy.NEVER_IMPORTABLE
                   for i in range(1, len(parts) + 1))


def _getitem(obj: Any, key: object) -> object:
    return obj[key]


def _apply(func: Callable[..., object], *args: object, **kwargs: object) -> object:
    return func(*args, **kwargs)
