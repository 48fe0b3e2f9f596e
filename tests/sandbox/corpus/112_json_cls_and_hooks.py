# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: json.loads(cls=...) calls cls() and then the real .decode of what it returns; json.dumps(default=...) hands the hook unserializable objects; cls returning a host proxy makes json call .decode on the host object
# red team: 6d8a476, wide allowlist
import json

seen = []
codec = json.loads("utf-8", cls=bytes)  # b"".decode("utf-8"): a codec lookup, no more
json.dumps([{1, 2}], default=lambda o: seen.append(o) or "x")
try:
    json.loads("SECRET_KEY", cls=lambda: app.state.engine)
    result = "ESCAPED host decode"
except (AttributeError, TypeError):
    pass
try:
    json.loads("{}", cls=lambda: app.state.engine.config)
    result = "ESCAPED config reached"
except (AttributeError, TypeError):
    pass
