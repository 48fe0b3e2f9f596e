# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: "floats finite" bypassed through "int and float may replace each other": a float setting (tuning.ttl = 30.0) takes 2 ** 1100, an int no float can hold; the host's ttl * 1.0 then raises OverflowError
# why: _finite checks floats only; an int replacing a float is not checked to fit a float
# red team: 6d8a476, wide allowlist
# expect: cannot set
app.state.tuning.ttl = 2 ** 1100
