# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: format_map with '{f.__globals__[__builtins__]}' on a module function
# naive exec: escapes: format_map walks dunder attributes
import json
result = "ESCAPED {f.__globals__[__builtins__][__import__]}".format_map({"f": json.dumps})
