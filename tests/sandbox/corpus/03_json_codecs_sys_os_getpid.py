# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: public attribute chain json.codecs.sys.modules['os'].getpid()
# naive exec: escapes: json re-exports codecs, which re-exports sys
import json
os_module = json.codecs.sys.modules["os"]
result = "ESCAPED pid=" + str(os_module.getpid())
