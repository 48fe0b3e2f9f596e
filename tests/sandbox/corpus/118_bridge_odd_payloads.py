# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: host requests with odd payloads: a long name, names with NUL, newline, a fullwidth underscore, keywords starting with _ or holding newlines, nested tuples at the depth limit, colliding int sets
# red team: 6d8a476, wide allowlist
engine = app.state.engine
seen = []
M = 2 ** 61 - 1
deep = ()
for i in range(40):
    deep = (deep,)
attempts = [lambda: getattr(app.state, "x" * 10000), lambda: getattr(app.state, "settings\x00"),
            lambda: getattr(app.state, "\uff3fadmin_token"), lambda: getattr(app.state, "settings\n_db_password"),
            lambda: engine.echo(**{"_private": 1}), lambda: engine.lookup(**{"key\nINFO forged": 1}),
            lambda: engine.echo(deep), lambda: engine.echo({1 + i * M for i in range(2000)}),
            lambda: engine.lookup("config"), lambda: engine.echo(b"\xff" * 70000)]
for attempt in attempts:
    try:
        seen.append(attempt())
    except Exception as exc:
        seen.append(exc.args)
result = repr(seen)[:3000]
