# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a host method answers a list that refers to the same long line 99,000 times: the worker serialized it (half a gigabyte) before checking its size
# naive exec: dos (not checked against the naive harness: today's main builds a multi-gigabyte JSON string in the worker)
# expect: larger than
engine = app.state.engine
engine.note("x" * 5000)
lines = engine.window(99000)
result = len(lines)
