# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: app.secret_key and app.config['COMMON_API_TOKEN']
# naive exec: escapes: secrets are plain attributes of the app
result = "ESCAPED " + app.secret_key + " " + app.config["COMMON_API_TOKEN"]
