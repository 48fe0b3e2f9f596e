# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: one long C-level call: a huge integer power
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: timed out|memory limit|CPU
result = 7 ** 7 ** 9
