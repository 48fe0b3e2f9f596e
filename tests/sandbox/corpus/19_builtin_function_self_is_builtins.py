# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: print.__self__ is the builtins module: its __import__
# naive exec: escapes: builtin functions carry their module in __self__
real_builtins = print.__self__
result = "ESCAPED " + real_builtins.__import__("os").getcwd()
