# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a list of ten billion elements
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: memory limit
result = len([0] * 10 ** 10)
