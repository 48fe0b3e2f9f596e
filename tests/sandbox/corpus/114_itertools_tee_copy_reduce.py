# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: itertools.tee objects over a host proxy's iteration, copied and deep-copied (tee's __copy__, the teedataobject's reduce hands over the underlying iterator)
# red team: 6d8a476, wide allowlist
import itertools, copy

a, b = itertools.tee(iter(app.state.history))
clones = [copy.copy(a), copy.deepcopy(b), copy.copy(itertools.count(3))]
for clone in clones:
    for name in ("__reduce__", "__copy__", "__setstate__", "__class__"):
        try:
            got = getattr(clone, name)
            result = "ESCAPED " + name + " of " + repr(clone)
        except AttributeError:
            pass
listed = [list(c) for c in clones[:2]]
