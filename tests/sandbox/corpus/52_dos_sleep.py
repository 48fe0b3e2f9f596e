# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: time.sleep for a long time
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: timed out
import time
time.sleep(3600)
