"""The package's layers: no module imports a layer above its own, at module level or
inside a function (typing-only imports excepted, they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import common_api

PACKAGE = Path(common_api.__file__).parent

# lowest first; a module may import its own layer and those below
LAYERS: tuple[tuple[str, ...], ...] = (
    # leaves: they import nothing of common_api but each other (the package root loads its
    # public names lazily, so ``from common_api import __version__`` loads nothing)
    ("common_api", "common_api.errors", "common_api.setting_keys", "common_api.host_names",
     "common_api.startup_log", "common_api.periodic", "common_api.peer_channel",
     "common_api.sandbox"),
    ("common_api.compat",),  # other libraries' private code
    ("common_api.config", "common_api.endpoints"),
    ("common_api.web",),  # Flask glue the views share: answer bodies, the OpenAPI document
    ("common_api.services",),  # no Flask, no processes of their own
    ("common_api.workers",),  # one server's workers and their channel
    ("common_api.coordination",),  # one process or many, behind one interface
    ("common_api.host_setup", "common_api.hook_audit", "common_api.gunicorn",
     "common_api.gunicorn_worker", "common_api.gunicorn_conf", "common_api.extension",
     "common_api.registration"),
    ("common_api.blueprint", "common_api.ui", "common_api.demo"),
    ("common_api.client", "common_api.cli"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer)
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best[0]:
                best = (len(name), index)
    assert best[1] >= 0, f"{module} is in no layer"
    return best[1]


def _typing_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(path: Path) -> set[str]:
    """The common_api modules ``path`` imports (a name imported from a package counts as
    its submodule when there is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(
        path).rpartition(".")[0]
    found: set[str] = set()
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _typing_only(node):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for target in imported(path):
            if target != "common_api" and layer_of(target) > layer_of(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_leaves_import_no_other_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        if layer_of(module) == 0:
            assert {layer_of(target) for target in imported(path)} <= {0}, module
