# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: assign a script function to a host callback attribute: the host would later run script code in the worker
# naive exec: escapes: the host's callback is now the script's lambda
# probe: result = app.state.engine.l1.on_evict("k")
app.state.engine.l1.on_evict = lambda key: "ESCAPED"
