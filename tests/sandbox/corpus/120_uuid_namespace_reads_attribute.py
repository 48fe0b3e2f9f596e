# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: uuid.uuid3/uuid5 read namespace.bytes with the real getattr: pass host proxies and a script object whose bytes property is a host value
# red team: 6d8a476, wide allowlist
import uuid

seen = []
for namespace in (app.state.engine, app.state.engine.l1, app):
    try:
        seen.append(str(uuid.uuid3(namespace, "x")))
        result = "ESCAPED namespace.bytes read on a host proxy"
    except (AttributeError, TypeError):
        pass
try:
    uuid.UUID(fields=app.state.engine.metadata.kv_shape)
except (TypeError, ValueError):
    pass
