# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: builtin functions' __self__ is the builtins module: copy and deepcopy them (their reduce names a global), read __self__ on the copies, on str.maketrans and dict.fromkeys (bound to their type)
# red team: 6d8a476, wide allowlist
import copy

for fn in (len, abs, str.maketrans, dict.fromkeys, int.from_bytes, iter, next):
    for clone in (copy.copy(fn), copy.deepcopy(fn)):
        try:
            owner = getattr(clone, "__self__")
            result = "ESCAPED " + repr(owner)
        except AttributeError:
            pass
