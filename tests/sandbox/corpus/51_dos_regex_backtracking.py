# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: catastrophic regex backtracking (one C call)
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: timed out
import re
result = re.match(r"(a+)+$", "a" * 64 + "b")
