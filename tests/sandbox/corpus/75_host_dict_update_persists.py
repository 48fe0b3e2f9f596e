# ruff: noqa - a hostile script, kept as written
# threat: 6 leave anything behind for the next script
# technique: a host dict subclass's inherited update/setdefault change the live registry for later scripts
# naive exec: escapes: the next script sees the injected model
# probe: result = str(app.state.registry.models())
app.state.registry.update({"ESCAPED": 1})
app.state.registry.setdefault("ESCAPED-too", 2)
