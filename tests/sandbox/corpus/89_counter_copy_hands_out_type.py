# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: collections.Counter.copy(int) returns int.__class__(int), that is type; type("Built", (dict,), {}) builds a class outside the class guard
# why: a vetted class hands out its unbound methods, which accept any self; Counter.copy calls self.__class__
# escapes: runner a75ee23, wide allowlist
import collections

real_type = collections.Counter.copy(int)
Built = real_type("Built", (dict,), {})  # make_class would refuse a dict base
result = "ESCAPED %r reached; %r built outside the guard" % (real_type, Built)
