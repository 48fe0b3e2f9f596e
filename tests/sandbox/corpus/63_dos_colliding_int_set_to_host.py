# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a set of integers that all hash alike, sent three times in one host call: the worker rebuilds each copy in one quadratic C call holding the GIL
# naive exec: dos (not checked against the naive harness: today's main freezes the worker's threads for seconds per request)
# expect: message size limit|1024 keys|timed out
M = 2 ** 61 - 1
bad = {1 + i * M for i in range(12000)}  # all hash to 1: built once here, ~1 s
engine = app.state.engine
while True:
    engine.echo(bad, bad, bad)
