# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: app.add_url_rule(...): register a backdoor route
# naive exec: escapes: the route stays registered on the live app
app.add_url_rule("/backdoor", "backdoor", lambda: "owned")
result = "ESCAPED routes=" + str("backdoor" in app.view_functions)
