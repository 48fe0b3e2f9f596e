# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a type-keeping write one level down: a tuple of str setting (tiers = ("cpu", "disk")) replaced by a tuple of ints and nested tuples; the attribute is still a tuple, the host's ",".join(l1.tiers) now raises TypeError
# why: type_change compares type(old) with type(new) only; tuple items are not compared
# red team: 6d8a476, wide allowlist
# expect: cannot set
app.state.engine.l1.tiers = (1, (2, None))
