# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: an int setting (tuning.batch = 8) takes 0.5; the host's range(batch) and items[:batch] raise TypeError (allowed by issue 16's "int and float may replace each other")
# why: an int attribute accepts any finite float, also one that is not integral
# red team: 6d8a476, wide allowlist
# expect: cannot set
app.state.tuning.batch = 0.5
