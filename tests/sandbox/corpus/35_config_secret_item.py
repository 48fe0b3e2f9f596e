# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: app.config['SECRET_KEY']: read the app's secret
# naive exec: escapes: the app is the live Flask object
result = "ESCAPED " + app.config["SECRET_KEY"]
