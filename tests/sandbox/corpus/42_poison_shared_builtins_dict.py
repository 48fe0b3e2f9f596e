# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: write into the shared restricted builtins dict
# naive exec: escapes: the naive sandbox builds its builtins dict once and reuses it
# probe: result = sum([1, 2])
__builtins__["sum"] = lambda *args: "ESCAPED poisoned"
result = "patched"
