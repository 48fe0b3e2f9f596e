"""Which objects are host code: an allowlist of packages and the whole class hierarchy.

Host code is the app's own package (derived from its import name) plus the
packages of ``COMMON_API_SCRIPT_HOST_PACKAGES``. A class is a host class only when
it is defined in one of them *and* every class it derives from is a host class,
a neutral base (``object``, ``abc.ABC``, ``typing.Generic``/``Protocol``, the
``collections.abc`` ABCs) or a builtin plain-data type (``list``, ``dict``...). A
class that derives from anything else (``Flask``, ``flask.Config``,
``logging.Logger``, a third-party client) is treated as that class: not host
code. Third-party libraries are never host code unless named in the setting.
"""

from __future__ import annotations

import abc
import collections.abc
import types
import typing
from collections.abc import Iterable

from . import policy

#: Builtin data types a host class may derive from (a host ``dict`` subclass).
#: Their own methods are not host API; only bounded special operations are used.
PLAIN_BASES: frozenset[type] = frozenset(
    {list, dict, set, frozenset, tuple, int, float, str, bytes}
)
_NEUTRAL: frozenset[type] = frozenset(
    {object, abc.ABC, typing.Generic, typing.Protocol}  # type: ignore[arg-type]
    | {v for v in vars(collections.abc).values() if isinstance(v, type)}
)


class HostOrigin:
    """The host packages of one app, and the verdict on each class (cached)."""

    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = tuple(sorted({p for p in packages if p and not policy.never_host(p)}))
        self._classes: dict[type, bool] = {types.SimpleNamespace: True}

    @classmethod
    def for_app(cls, app: object, extra: Iterable[str] = ()) -> HostOrigin:
        derived = policy.app_package(getattr(app, "import_name", None))
        return cls([*extra, *([derived] if derived else [])])

    def module_ok(self, module: object) -> bool:
        """Whether ``module`` (a ``__module__`` value) is in a host package."""
        if not isinstance(module, str) or not module:
            return False
        return any(module == p or module.startswith(p + ".") for p in self.packages)

    def class_ok(self, cls: type) -> bool:
        """Whether instances of ``cls`` are host objects."""
        verdict = self._classes.get(cls)
        if verdict is None:
            verdict = self._classes[cls] = self.module_ok(
                getattr(cls, "__module__", None)) and all(
                base in _NEUTRAL or base in PLAIN_BASES or self.class_ok(base)
                for base in cls.__mro__[1:])
        return verdict

    def defines(self, klass: type) -> bool:
        """Whether attributes defined by ``klass`` are host API."""
        return klass is not types.SimpleNamespace and self.class_ok(klass)

    def function_ok(self, func: object) -> bool:
        return isinstance(func, types.FunctionType) and self.module_ok(func.__module__)

    def object_ok(self, value: object) -> bool:
        """Whether ``value`` may be handed to a script as a handle."""
        if isinstance(value, (type, types.ModuleType)):
            return False
        if isinstance(value, types.MethodType):
            return self.object_ok(value.__self__) and self.function_ok(value.__func__)
        if isinstance(value, types.FunctionType):
            return self.function_ok(value)
        return self.class_ok(type(value))
