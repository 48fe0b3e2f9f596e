# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: getattr with computed dunder names walks to object.__subclasses__() (no static name check sees them)
# naive exec: escapes: getattr is the real builtin
cls = getattr(getattr((), "__cl" + "ass__"), "__ba" + "se__")
subclasses = getattr(cls, "__subc" + "lasses__")()
result = "ESCAPED " + str(len(subclasses))
