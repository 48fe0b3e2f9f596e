# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: a membership test against app needs no host object: today the worker decodes the operand (a colliding set) before any policy check
# naive exec: dos (not checked against the naive harness: today's main freezes the worker's threads for seconds per request)
# expect: message size limit|does not support|timed out
M = 2 ** 61 - 1
bad = frozenset(1 + i * M for i in range(12000))
while True:
    (bad, bad, bad) in app
