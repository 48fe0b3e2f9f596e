# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: repr() of a SimpleNamespace prints its underscore attributes and the repr of what they hold
# naive exec: escapes: SimpleNamespace.__repr__ shows _db_password
# expect: namespace(mode='prod')namespace(
result = repr(app.state.settings) + repr(app.state)
