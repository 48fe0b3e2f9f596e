# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a host wrapper's __getattr__ delegates to the Flask app: any name the wrapper lacks is read on the app
# naive exec: escapes: the wrapper forwards to the live app
result = "ESCAPED " + app.state.engine.delegate.secret_key
