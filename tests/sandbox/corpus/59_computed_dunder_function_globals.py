# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: getattr(json.dumps, '__glo' + 'bals__') then the real __import__
# naive exec: escapes: computed names defeat name rules
import json
scope = getattr(json.dumps, "__glo" + "bals__")
os_module = scope["__builtins__"]["__import__"]("os")
result = "ESCAPED " + os_module.getcwd()
