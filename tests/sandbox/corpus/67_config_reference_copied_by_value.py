# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a host object keeps app.config (a dict subclass); today it is copied to the script by value before its origin is checked
# naive exec: escapes: the engine's config attribute is the live flask.Config
result = "ESCAPED " + app.state.engine.config["SECRET_KEY"]
