# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: re.sub with a callback receives the Match object; read its pattern (.re), .regs, the compiled pattern's internals, copy and deepcopy it
# red team: 6d8a476, wide allowlist
import re, copy

matches = []
re.sub("(a)(b)?", lambda m: matches.append(m) or "", "abab")
m = matches[0]
for name in ("re", "regs", "__class__", "string"):
    try:
        value = getattr(m, name)
        if name != "string":
            result = "ESCAPED Match." + name + " = " + repr(value)
    except AttributeError:
        pass
for obj in (copy.copy(m), copy.deepcopy(re.compile("x")), m.expand(r"\1")):
    try:
        getattr(obj, "__class__")
        result = "ESCAPED " + repr(obj)
    except AttributeError:
        pass
