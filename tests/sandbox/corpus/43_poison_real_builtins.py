# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: replace map in the real builtins module (print.__self__) under allowed modules' code
# naive exec: escapes: string.capwords of a later script calls the poisoned map
# probe: import string\nresult = string.capwords("a b")
print.__self__.map = lambda *args: ["ESCAPED poisoned"]
result = "patched"
