# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: app.config.from_prefixed_env('COMMON_API_TEST'): env secret into config
# naive exec: escapes: Flask copies prefixed environment variables into the config
app.config.from_prefixed_env("COMMON_API_TEST")
result = "ESCAPED " + str(app.config.get("DB_PASSWORD"))
