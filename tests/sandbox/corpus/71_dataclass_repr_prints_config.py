# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: the generated repr of a host dataclass prints every field, a flask.Config and an underscore field included
# naive exec: escapes: the dataclass repr shows the config's SECRET_KEY
# expect: CacheConfig(ttl=60, app_config=<Config object>)
result = repr(app.state.engine.cache_config)
