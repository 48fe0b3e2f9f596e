# ruff: noqa - a hostile script, kept as written
# threat: 8 forge log lines
# technique: Unicode bidi controls (U+202E, U+2066) in the exception message reach the runner's record unescaped and reorder how the line reads in a terminal or log viewer
# why: log_text escapes C0/C1 controls, line separators and surrogates, not format characters (category Cf)
# red team: 6d8a476, wide allowlist
# expect: ValueError
raise ValueError("ok \u202e 7.8.9.01=tneilc \u2066x\u2069")
