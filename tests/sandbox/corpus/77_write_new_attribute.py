# ruff: noqa - a hostile script, kept as written
# threat: 6 leave anything behind for the next script
# technique: create a new attribute on a host object (writes may only reconfigure existing settings)
# naive exec: escapes: the attribute survives into the next script
# probe: result = app.state.engine.l1.marker
app.state.engine.l1.marker = "ESCAPED"
