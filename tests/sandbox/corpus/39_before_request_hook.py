# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: app.before_request_funcs: install a hook that runs on every request
# naive exec: escapes: the hook list is a plain mutable dict on the app
app.before_request_funcs.setdefault(None, []).append(lambda: None)
result = "ESCAPED hooks=" + str(len(app.before_request_funcs[None]))
