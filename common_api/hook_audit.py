"""Which of common_api's gunicorn hooks a server's configuration leaves out, and what each
one costs: a host that adopts the own-config recipe halfway gets a component that answers
for one worker in places, and nothing else would say so.

A hook counts as called when gunicorn's setting is common_api's function, or a function of
the host's whose code calls a function of that name reached through ``common_api.gunicorn``
(``common_api_hooks.post_fork(server, worker)``, or the function imported by name). A hook
left at gunicorn's default, or a host function that never names it, is missing. A callable
that is not a plain function cannot be read, and is given the benefit of the doubt.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common_api import gunicorn as hooks


@dataclass(frozen=True)
class Hook:
    name: str
    #: what the server loses without it, as an operator would notice it
    cost: str


HOOKS: tuple[Hook, ...] = (
    Hook("post_fork", "a worker whose metric files cannot be created (a full or read-only "
         "state directory) fails to boot instead of keeping them in memory"),
    Hook("post_worker_init", "health, /periodic-threads and scope=all see only the answering "
         "worker"),
    Hook("child_exit", "the counts of a worker that exits are not folded into the archive, "
         "and its status and files stay behind"),
    Hook("on_exit", "the state directory prepare_state() made is not removed at exit"),
)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def calls_ours(function: Any, name: str) -> bool:
    """Whether gunicorn's ``name`` setting ``function`` runs common_api's hook of that name."""
    ours = getattr(hooks, name)
    if function is ours:
        return True
    if getattr(function, "__module__", None) == "gunicorn.config":
        return False  # gunicorn's default: does nothing
    function = getattr(function, "__func__", function)
    code = getattr(function, "__code__", None)
    scope = getattr(function, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(scope, dict):
        return True  # a callable object or a partial: cannot tell, so do not accuse it
    names = {n for c in _codes(code) for n in (*c.co_names, *c.co_freevars)}
    if name in names and any(value is hooks for value in scope.values()):
        return True
    return any(scope.get(n) is ours for n in names)


def missing_hooks(settings: Any) -> list[Hook]:
    """The hooks ``settings`` (gunicorn's ``Config``) leaves out, in the order they run."""
    return [hook for hook in HOOKS if not calls_ours(getattr(settings, hook.name, None),
                                                       hook.name)]


def describe(hook: Hook) -> str:
    return (f"common_api: gunicorn's {hook.name} hook does not call "
            f"common_api.gunicorn.{hook.name}: {hook.cost} (README: 'With your own gunicorn "
            "config')")
