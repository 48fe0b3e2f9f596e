# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: exponential recursion fib-style
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: timed out
def explode(n):
    return 1 if n == 0 else explode(n - 1) + explode(n - 1)


result = explode(200)
