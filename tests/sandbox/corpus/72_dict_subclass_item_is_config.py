# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a host dict subclass holds app.config as an item: indexing it hands the config over by value
# naive exec: escapes: the item is the live flask.Config
result = "ESCAPED " + app.state.engine.holder["config"]["SECRET_KEY"]
