"""A deliberately naive sandbox, used to show that the escape corpus bites.

It is what public "run a script" endpoints typically do: ``exec`` with a
restricted builtins dict (shared by every run, built once) and an import
allowlist, against a live Flask app that holds secrets (a host ``Flask``
subclass with the realistic host's objects under ``app.state``). Run as::

    python naive_harness.py <corpus file> <allowed,imports>

It prints one JSON object: the attack's outcome and, when the file has a
``# probe:`` line, the outcome of that probe run afterwards in the same process.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import types

from flask import Flask
from hosts.lmcache_host import ComponentApp, install

CONFIG_CANARY = "cfg-canary-5e1d09"
TOKEN_CANARY = "tok-canary-a83c21"

ALLOWED = set(filter(None, sys.argv[2].split(","))) if len(sys.argv) > 2 else set()

SAFE_NAMES = (
    "abs", "all", "any", "bool", "bytes", "callable", "chr", "dict", "dir", "divmod",
    "enumerate", "filter", "float", "format", "frozenset", "getattr", "hasattr", "hash",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "ord", "pow", "print", "range", "repr", "reversed", "round", "set", "setattr",
    "sorted", "str", "sum", "tuple", "type", "vars", "zip", "Exception", "ValueError",
    "TypeError", "KeyError", "IndexError", "AttributeError", "ImportError", "NameError",
    "RuntimeError", "StopIteration", "ZeroDivisionError",
)


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name.split(".")[0] not in ALLOWED:
        raise ImportError(f"Import of {name!r} is not allowed")
    return builtins.__import__(name, globals, locals, fromlist, level)


SAFE_BUILTINS = {name: getattr(builtins, name) for name in SAFE_NAMES}
SAFE_BUILTINS["__import__"] = guarded_import
SAFE_BUILTINS["__build_class__"] = builtins.__build_class__


class Metadata:
    kv_shape = (27, 1, 64, 1, 576)

    def is_first_rank(self):
        return True


def make_app() -> Flask:
    app = ComponentApp("naive_target")
    app.config.update(SECRET_KEY=CONFIG_CANARY, COMMON_API_TOKEN=TOKEN_CANARY)
    engine = types.SimpleNamespace(metadata=Metadata(), app=app, module=os)
    app.state = types.SimpleNamespace(lmcache_adapter=types.SimpleNamespace(lmcache_engine=engine))
    install(app)  # the realistic host's objects (sandbox/hosts/lmcache_host.py)
    return app


def run(source: str, app: Flask) -> dict[str, object]:
    namespace = {"__builtins__": SAFE_BUILTINS, "app": app}
    try:
        exec(compile(source, "<script>", "exec"), namespace)
    except BaseException as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
    result = namespace.get("result", "Script executed successfully")
    return {"status": "ok", "result": str(result)[:2000]}


_dumps = json.dumps  # scripts may poison the json module of this process


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        source = handle.read()
    probe = None
    for line in source.splitlines():
        if line.startswith("# probe:"):
            probe = line[len("# probe:"):].strip().replace("\\n", "\n")
    app = make_app()
    report = {"attack": run(source, app)}
    if probe is not None:
        report["probe"] = run(probe, app)
    sys.stdout.write(_dumps(report) + "\n")


if __name__ == "__main__":
    main()
