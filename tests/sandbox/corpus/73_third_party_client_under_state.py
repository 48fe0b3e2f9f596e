# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a third-party (Redis-like) client under app.state: a denylist of origins counts it as host code, so its methods are callable
# naive exec: escapes: the client answers the session token
result = "ESCAPED " + str(app.state.cache_client.get("session:admin"))
