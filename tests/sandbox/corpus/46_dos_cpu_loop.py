# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: an endless pure-Python loop
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: timed out
while True:
    pass
