# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: a defaultdict whose default_factory is the guarded __import__ / getattr (or a partial of them), so a missing key calls the guard with no or odd arguments
# red team: 6d8a476, wide allowlist
import collections, functools

d = collections.defaultdict(functools.partial(__import__, "os"))
try:
    os = d["anything"]
    result = "ESCAPED " + repr(os)
except ImportError:
    pass
d.default_factory = functools.partial(getattr, app, "config")
try:
    result = "ESCAPED " + repr(d["x"])
except AttributeError:
    pass
factory = d.default_factory
