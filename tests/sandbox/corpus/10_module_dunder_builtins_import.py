# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: json.__builtins__['__import__']('os'): a module's own builtins
# naive exec: escapes: every module has the real builtins in __builtins__
import json
os_module = json.__builtins__["__import__"]("os")
result = "ESCAPED " + os_module.name
