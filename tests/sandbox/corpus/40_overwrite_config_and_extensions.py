# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: write app.config and app.extensions
# naive exec: escapes: config and extensions are plain mutable mappings
app.config["SECRET_KEY"] = "attacker-chosen"
app.extensions["pwned"] = True
result = "ESCAPED " + app.config["SECRET_KEY"]
