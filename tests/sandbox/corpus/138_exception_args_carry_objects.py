# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: exceptions raised by the interpreter and the standard library with objects in args (KeyError, StopIteration.value, UnicodeDecodeError, a host proxy's error), looking for a traceback, frame or module among them
# red team: 6d8a476, wide allowlist
import json

carried = []
def grab(fn):
    try:
        fn()
    except Exception as exc:
        carried.extend(exc.args)

grab(lambda: {}[app.state.engine])
grab(lambda: next(iter(())))
grab(lambda: b"\xff".decode("utf-8"))
grab(lambda: app.state.engine.metadata.explode())
grab(lambda: json.loads("[1,"))
grab(lambda: app.state.engine.config)
for item in carried:
    for name in ("tb_frame", "f_globals", "__traceback__", "__dict__", "__class__"):
        try:
            got = getattr(item, name)
            result = "ESCAPED " + name + " of " + repr(item)
        except AttributeError:
            pass
