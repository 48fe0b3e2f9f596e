# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: builtin methods a host list subclass inherits (extend doubles it in the worker, sort runs one long C loop): not host API
# naive exec: dos (not checked against the naive harness: it grows the worker by millions of entries and sorts them in one C call)
# expect: not host code
import random
history = app.state.history
history.clear()
chunk = list(range(90000))
random.shuffle(chunk)
history.extend(chunk)
for _ in range(6):
    history.extend(history)   # 5.8 million entries in the worker
history.sort()                # one C call
