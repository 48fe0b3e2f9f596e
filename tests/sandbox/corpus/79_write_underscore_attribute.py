# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the sandbox's checks
# technique: setattr with a computed underscore name on a host object, then read it back the same way
# naive exec: escapes: plain setattr/getattr reach the private attribute
# probe: result = getattr(app.state.engine.l1, "_" + "marker")
setattr(app.state.engine.l1, "_" + "marker", "ESCAPED")
