# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: assign a host object (a proxy) to a plain setting, so a setting leads to the engine and its config
# naive exec: escapes: the setting now refers to the engine, whose config is the live flask.Config
# probe: result = "ESCAPED " + app.state.engine.l1.eviction.config["SECRET_KEY"]
app.state.engine.l1.eviction = app.state.engine
