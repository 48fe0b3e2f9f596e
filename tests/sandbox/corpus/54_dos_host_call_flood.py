# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: flooding the worker with host requests
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: host access limit|timed out
while True:
    app.state
