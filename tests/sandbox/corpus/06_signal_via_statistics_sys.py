# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: statistics.sys.modules['os'].kill(pid, 0): send a signal
# naive exec: escapes: statistics re-exports sys
import statistics
os_module = statistics.sys.modules["os"]
os_module.kill(os_module.getpid(), 0)
result = "ESCAPED signal sent"
