# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a 200 MB result string
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: memory limit|truncated
result = "x" * (200 * 1024 * 1024)
