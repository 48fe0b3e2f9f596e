# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: write an attribute of a framework object held by a host object (the engine's logger: renaming it detaches its configured level)
# naive exec: escapes: the engine's live logger is renamed for every later script
# probe: result = app.state.engine.logger.name
app.state.engine.logger.name = "ESCAPED"
