# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: refused requests in a loop, each naming a 200-character missing attribute, so the worker builds and the log could carry long refusals
# red team: 6d8a476, wide allowlist
# expect: host access limit|timed out
name = "y" * 200
state = app.state
while True:
    try:
        getattr(state, name)
    except AttributeError:
        pass
