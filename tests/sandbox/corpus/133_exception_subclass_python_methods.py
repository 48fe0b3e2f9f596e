# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: subclass standard-library exceptions with Python methods (json.JSONDecodeError, copy.Error, statistics.StatisticsError) and read their unbound __init__/__reduce__, which accept any self
# red team: 6d8a476, wide allowlist
import json, copy, statistics

found = []
for base in (json.JSONDecodeError, copy.Error, statistics.StatisticsError):
    class Sub(base):
        pass
    for owner in (base, Sub):
        for name in ("__init__", "__reduce__", "__str__"):
            try:
                found.append(getattr(owner, name))
            except AttributeError:
                pass
unbound = [f for f in found if "function" in repr(f) and "bound" not in repr(f)]
if unbound:
    result = "ESCAPED unbound " + repr(unbound)
