# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: memory growth in a loop
# naive exec: dos (not checked against the naive harness: it would hang or exhaust it)
# expect: memory limit
chunks = []
while True:
    chunks.append("x" * 10 ** 7)
