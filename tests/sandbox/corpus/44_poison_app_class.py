# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: set an attribute on the app's class for later scripts
# naive exec: escapes: the class outlives the script
# probe: result = app.backdoor
app.__class__.backdoor = "ESCAPED poisoned"
result = "patched"
