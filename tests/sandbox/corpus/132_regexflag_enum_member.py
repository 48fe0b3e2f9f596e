# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: re.IGNORECASE is an enum member (RegexFlag): its class, _missing_, __reduce_ex__ (the pickling helper that handed out the real getattr before) and what copy, deepcopy and arithmetic make of it
# red team: 6d8a476, wide allowlist
import re, copy

flag = re.IGNORECASE
made = [copy.copy(flag), copy.deepcopy(flag), flag | re.MULTILINE, ~flag, flag ^ 0]
for obj in made:
    for name in ("__class__", "__reduce_ex__", "_missing_", "name", "value", "__objclass__"):
        try:
            got = getattr(obj, name)
            result = "ESCAPED " + name + " = " + repr(got)
        except AttributeError:
            pass
