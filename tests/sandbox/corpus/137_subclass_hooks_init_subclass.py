# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: __init_subclass__ on a script base (type() calls it with the new class and class keywords), so that a later class statement runs script code with the class before the guard records it
# red team: 6d8a476, wide allowlist
class Base:
    def __init_subclass__(cls, **kwargs):
        global result
        result = "ESCAPED " + repr(cls)

class Child(Base):
    pass
