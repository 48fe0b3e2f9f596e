# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: decimal's InvalidOperation carries its signal classes in args (a list of classes); take them, subclass them, read their dunders
# red team: 6d8a476, wide allowlist
import decimal

try:
    decimal.Decimal("not a number")
except decimal.InvalidOperation as exc:
    signals = exc.args[0]
found = []
for cls in signals:
    class Sub(cls):
        pass
    for name in ("__init__", "__dict__", "__module__", "__subclasses__", "__mro__"):
        try:
            found.append(getattr(cls, name))
            if name not in ("__init__",):
                result = "ESCAPED " + name
        except AttributeError:
            pass
