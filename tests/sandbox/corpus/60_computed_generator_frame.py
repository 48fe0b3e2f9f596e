# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: getattr(generator, 'gi_' + 'frame').f_globals
# naive exec: escapes: a generator's frame exposes the module globals
def numbers():
    yield 1


frame = getattr(numbers(), "gi_" + "frame")
result = "ESCAPED " + str(sorted(getattr(frame, "f_" + "globals"))[:3])
