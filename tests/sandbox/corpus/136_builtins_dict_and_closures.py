# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: the builtins dict and the guard's state through the script's builtins: __globals__, __builtins__, __closure__ cells, __wrapped__, __defaults__, __kwdefaults__, __code__ of getattr/print/__import__ and of the script's own functions
# red team: 6d8a476, wide allowlist
def own(a=1, *, b=2):
    return a

reached = []
for fn in (getattr, setattr, print, __import__, own, lambda: 0):
    for name in ("__globals__", "__builtins__", "__closure__", "__wrapped__", "__defaults__",
                 "__kwdefaults__", "__code__", "__self__", "__func__", "__dict__"):
        try:
            reached.append((name, getattr(fn, name)))
        except AttributeError:
            pass
if reached:
    result = "ESCAPED " + repr(reached)[:500]
