# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: the host's app class subclasses Flask in the host's own module: today origin is judged by type(obj).__module__, so the app is a "host object"
# naive exec: escapes: engine.app is the live app
result = "ESCAPED " + app.state.engine.app.config["SECRET_KEY"]
