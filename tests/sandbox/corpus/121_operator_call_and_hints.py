# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: operator.call, itemgetter, length_hint, index and getitem as indirections around the guards, on app and host objects
# red team: 6d8a476, wide allowlist
import operator

seen = []
attempts = [lambda: operator.call(getattr, app, "__class__"), lambda: operator.length_hint(app),
            lambda: operator.itemgetter("config")(app.state.engine.holder),
            lambda: operator.getitem(app.state.engine.holder, "config"),
            lambda: operator.index(app), lambda: operator.call(setattr, app, "name", "x"),
            lambda: operator.call(__import__, "os")]
for attempt in attempts:
    try:
        seen.append(attempt())
    except Exception:
        pass
if [x for x in seen if not isinstance(x, int)]:  # length_hint(app) answers its default, 0
    result = "ESCAPED " + repr(seen)
