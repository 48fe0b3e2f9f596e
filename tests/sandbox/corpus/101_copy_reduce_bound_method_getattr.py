# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: copy.copy of a bound method reduces to (real getattr, (self, func.__name__)); deepcopy(random.random) rebinds it to a copy of the module's hidden Random instance; then read __self__/__func__/__globals__ of what comes back
# red team: 6d8a476, wide allowlist
import copy, random

class A:
    def f(self):
        return "f"
    g = f  # g's function is named "f": copy.copy(a.g) runs getattr(a, "f")

a = A()
a.f = "instance attribute reached through the real getattr"
found = [copy.copy(a.g)]
clone = copy.deepcopy(random.random)
found.append(clone)
for name in ("__self__", "__func__", "__globals__", "__module__"):
    for obj in (clone, copy.copy(random.shuffle), copy.copy([].append)):
        try:
            found.append(getattr(obj, name))
            result = "ESCAPED " + name + " of " + repr(obj)
        except AttributeError:
            pass
