# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: a generator's frame, code and yield-from target, and the exception that throw() hands back (its __traceback__ frames)
# red team: 6d8a476, wide allowlist
def gen():
    try:
        yield 1
    except ValueError as exc:
        yield exc

g = gen()
next(g)
exc = g.throw(ValueError("x"))
for obj, name in ((g, "gi_frame"), (g, "gi_code"), (g, "gi_yieldfrom"), (g, "gi_suspended"),
                  (exc, "__traceback__"), (exc, "with_traceback"), (g, "__next__")):
    try:
        value = getattr(obj, name)
        result = "ESCAPED " + name + " = " + repr(value)
    except AttributeError:
        pass
g.close()
