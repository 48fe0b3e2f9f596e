# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: (lambda: 0).__globals__: the function's globals and builtins mapping
# naive exec: escapes: the globals of a script function expose the restricted builtins dict itself
globals_of_script = (lambda: 0).__globals__
result = "ESCAPED " + str(sorted(globals_of_script["__builtins__"])[:5])
