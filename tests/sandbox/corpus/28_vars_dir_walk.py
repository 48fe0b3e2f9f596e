# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: vars(app) / dir() enumeration to find the config
# naive exec: escapes: vars returns the live __dict__ of the app
attributes = vars(app)
result = "ESCAPED " + attributes["config"]["SECRET_KEY"] + " " + str(len(dir(app)))
