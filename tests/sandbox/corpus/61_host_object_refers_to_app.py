# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a host object under app.state holds the Flask app: engine.app.config
# naive exec: escapes: host objects are live, and this one refers back to the app
engine = app.state.lmcache_adapter.lmcache_engine
result = "ESCAPED " + engine.app.config["SECRET_KEY"]
