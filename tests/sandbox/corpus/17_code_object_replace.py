# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: f.__code__.replace() and the function type rebuild a function from a code object
# naive exec: escapes: code objects are editable and function types constructible
def probe():
    return ().__class__


code = probe.__code__.replace(co_name="rebuilt")
rebuilt = probe.__class__(code, probe.__globals__)
result = "ESCAPED " + str(rebuilt())
