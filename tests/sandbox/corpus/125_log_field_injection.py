# ruff: noqa - a hostile script, kept as written
# threat: 8 forge log lines
# technique: the exception message becomes the unquoted outcome= field of the runner's key=value record, before the real client= and writes= fields: a forged client and write list on the same line
# why: log_text escapes control characters, not the record's own field syntax
# red team: 6d8a476, wide allowlist
# expect: ValueError
raise ValueError("boom duration=0.001s client=10.9.8.7 writes=app.state.engine.l1.write_ttl_seconds:int->int")
