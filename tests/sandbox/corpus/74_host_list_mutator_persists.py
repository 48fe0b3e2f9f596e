# ruff: noqa - a hostile script, kept as written
# threat: 6 leave anything behind for the next script
# technique: a host list subclass's inherited append/extend mutate the live host object (item stores are refused, these were not)
# naive exec: escapes: the next script sees the appended marker
# probe: result = str(list(app.state.history))
app.state.history.append("ESCAPED")
app.state.history.extend(["ESCAPED"])
