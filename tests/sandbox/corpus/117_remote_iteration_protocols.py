# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: every iteration protocol of host proxies (reversed, sorted, dict(), zip, enumerate, unpacking, in, len) on app, app.state and host containers that hold the config
# red team: 6d8a476, wide allowlist
seen = []
attempts = [lambda: list(app), lambda: len(app), lambda: list(reversed(app.state.history)),
            lambda: sorted(app.state.registry), lambda: dict(app.state.engine.holder),
            lambda: [x for x in app.state.engine.holder], lambda: "config" in app.state.engine.holder,
            lambda: app.state.engine.holder["config"], lambda: list(zip(app.state.engine.holder, [1])),
            lambda: list(app.state), lambda: next(iter(app.state.engine.cache_config))]
for attempt in attempts:
    try:
        seen.append(attempt())
    except Exception:
        pass
result = repr(seen)
