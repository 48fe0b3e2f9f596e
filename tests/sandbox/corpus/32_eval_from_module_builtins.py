# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: eval reached through json.dumps.__globals__['__builtins__']
# naive exec: escapes: eval is not in the restricted dict but is in every module's builtins
import json
real_eval = json.dumps.__globals__["__builtins__"]["eval"]
result = "ESCAPED " + real_eval("__import__('os').getcwd()", {"__builtins__": json.dumps.__globals__["__builtins__"]})
