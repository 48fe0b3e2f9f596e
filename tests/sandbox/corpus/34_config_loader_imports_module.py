# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: app.config.from_object('subprocess'): a config loader imports any module
# naive exec: escapes: Flask imports the named module and copies its UPPERCASE names
app.config.from_object("subprocess")
result = "ESCAPED PIPE=" + str(app.config["PIPE"])
