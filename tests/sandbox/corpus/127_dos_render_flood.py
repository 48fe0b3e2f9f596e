# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: str() and repr() of the largest host objects in a tight loop: every call makes the worker render up to 20,000 characters
# red team: 6d8a476, wide allowlist
# expect: host access limit|host data limit|timed out
engine = app.state.engine
while True:
    str(app.state)
    repr(engine)
