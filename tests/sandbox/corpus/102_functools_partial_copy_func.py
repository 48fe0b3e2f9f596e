# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: functools.partial(getattr) copied with copy.copy/deepcopy, then partial.func / .args / .keywords read to reach the guard's closure and its cells
# red team: 6d8a476, wide allowlist
import copy, functools

p = functools.partial(getattr, "text")  # a host proxy refuses to be copied
for clone in (copy.copy(p), copy.deepcopy(p)):
    for name in ("func", "args", "keywords", "__closure__", "__dict__"):
        try:
            inner = getattr(clone, name)
            result = "ESCAPED partial." + name + " = " + repr(inner)
        except AttributeError:
            pass
g = copy.deepcopy(getattr)
cells = getattr(g, "__closure__", None)
if cells is not None or g is not getattr:
    result = "ESCAPED the guard's closure was copied or read"
