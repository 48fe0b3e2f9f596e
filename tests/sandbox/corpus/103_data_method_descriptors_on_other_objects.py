# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: method descriptors of plain-data types (dict.items, dict.update, list.sort, str.join, int.real) read from the class and applied to host proxies, module facades and a RegexFlag (an int subclass)
# red team: 6d8a476, wide allowlist
import json, re, collections

found = []
for call in (lambda: dict.items(app.state), lambda: dict.get(app.state.engine, "config"),
             lambda: dict.keys(json), lambda: list.copy(app.state.history),
             lambda: str.join(app.state.settings, ["a"]), lambda: dict.update(app.state, {}),
             lambda: set.add(app.state.engine.tags, 1)):
    try:
        found.append(call())
        result = "ESCAPED " + repr(found[-1])
    except TypeError:
        pass
bits = int.bit_length(re.IGNORECASE)  # an int subclass: fine, nothing more
real = int.real  # a getset descriptor: its __get__ checks the type
class Holder:
    r = real
try:
    Holder().r
    result = "ESCAPED int.real applied to a script object"
except TypeError:
    pass
