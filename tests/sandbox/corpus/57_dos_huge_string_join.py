# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a string of 10**11 characters
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: memory limit
result = "ab" * 10 ** 11
