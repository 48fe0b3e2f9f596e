"""AST policy: RestrictedPython's transformer, adapted to this sandbox.

RestrictedPython 9.0 (:class:`RestrictingNodeTransformer`) does the heavy lifting:
it rejects every node type it does not know (``match``, ``async``, ``except*``,
3.12 type aliases...), names and attributes that start with ``_``, frame and code
attributes, ``exec``/``eval`` calls and ``class ... metaclass=``, and it routes
attribute reads through ``_getattr_``, attribute/item stores through ``_write_``
and item reads through ``_getitem_``. What this module changes:

* ``print`` is a plain (capturing) builtin, not RestrictedPython's ``printed``
  machinery;
* augmented assignment of a plain name stays native (``total += i`` is not
  rewritten into a function call, which keeps loops fast); augmented assignment
  of attributes and items is allowed, through ``_write_``;
* iteration and unpacking are not wrapped: in this sandbox every object a
  script holds enforces its own policy (plain data, facades, host proxies);
* ``nonlocal`` is allowed; class keywords (``metaclass=``, any other) are not;
* a class may define the dunder methods of :data:`policy.SCRIPT_DUNDERS`, and a
  script may read them (``Base.__init__(self)``): the runtime guard allows that on
  the script's own classes and on exception classes only;
* annotated assignments are allowed (their parts are checked like any other);
* ``__import__(name)`` may be called (read, never assigned): it is the same
  guarded import as the ``import`` statement;
* errors are collected with their line numbers.

This module runs in the script's child process (see :mod:`.child`), so a hostile
source is parsed under that process's resource limits, never in the worker.
"""

from __future__ import annotations

import ast
import warnings
from types import CodeType

from RestrictedPython.transformer import RestrictingNodeTransformer

from .policy import SCRIPT_DUNDERS

#: Filename of compiled scripts; tracebacks are searched for it to find line numbers.
SCRIPT_FILENAME = "<script>"


class CompileFailed(Exception):
    """The script is not valid Python or breaks the AST policy."""

    def __init__(self, reason: str, lineno: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lineno = lineno


class SandboxTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy with the changes listed in the module docstring."""

    def __init__(self, errors: list[str], warnings: list[str], used_names: dict[str, bool]):
        super().__init__(errors, warnings, used_names)
        self.located_errors: list[tuple[int | None, str]] = []

    def error(self, node: ast.AST, info: str) -> None:
        self.located_errors.append((getattr(node, "lineno", None), info))
        super().error(node, info)

    def check_name(self, node: ast.AST, name: str | None,
                   allow_magic_methods: bool = False) -> None:
        if name is None or name == "_":
            return
        if name.startswith("_"):
            if (allow_magic_methods and name in SCRIPT_DUNDERS
                    and getattr(node, "col_offset", 0) != 0):
                return
            self.error(node, f'"{name}" is an invalid name because it starts with "_"')

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            self.used_names[node.id] = True
            if node.id == "__import__":  # the same guarded import as ``import``
                return node
        self.check_name(node, node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if node.attr not in SCRIPT_DUNDERS:
            return super().visit_Attribute(node)  # type: ignore[return-value]
        # ``Base.__init__(self)``: a read through _getattr_, which allows it on the
        # script's own classes only; never a store.
        node = self.node_contents_visit(node)
        if not isinstance(node.ctx, ast.Load):
            self.error(node, f'"{node.attr}" cannot be assigned or deleted')
            return node
        call = ast.Call(
            func=ast.Name("_getattr_", ast.Load()),
            args=[node.value, ast.Constant(node.attr)],
            keywords=[],
        )
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        # The target was visited: a Name is name-checked, an Attribute or a
        # Subscript got its value wrapped in _write_(...).
        return self.node_contents_visit(node)

    def guard_iter(self, node: ast.AST) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        # ``x: int = 3`` (``from __future__ import annotations`` scripts): the target
        # and the annotation are checked and rewritten like any other expression.
        return self.node_contents_visit(node)

    def visit_With(self, node: ast.With) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        if node.keywords:
            self.error(node, "class keyword arguments are not allowed")
        return super().visit_ClassDef(node)  # type: ignore[return-value]


def compile_script(source: str) -> CodeType:
    """Validate and compile ``source``; raise :class:`CompileFailed` with a short reason."""
    try:
        tree = ast.parse(source, SCRIPT_FILENAME, "exec")
    except SyntaxError as exc:
        raise CompileFailed(f"SyntaxError: {exc.msg} (line {exc.lineno})", exc.lineno) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise CompileFailed(f"SyntaxError: {type(exc).__name__}: {exc}", None) from None
    errors: list[str] = []
    transformer = SandboxTransformer(errors, [], {})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = transformer.visit(tree)
    except RecursionError:
        raise CompileFailed("Script rejected: it is nested too deeply", None) from None
    if transformer.located_errors:
        lineno, info = transformer.located_errors[0]
        where = f" (line {lineno})" if lineno is not None else ""
        raise CompileFailed(f"Script rejected: {info.rstrip('.')}{where}", lineno)
    try:
        return compile(tree, SCRIPT_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise CompileFailed(f"SyntaxError: {exc.msg} (line {exc.lineno})", exc.lineno) from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise CompileFailed(f"SyntaxError: {type(exc).__name__}: {exc}", None) from None
