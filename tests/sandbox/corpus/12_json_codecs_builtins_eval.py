# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: json.codecs.builtins.__import__('subprocess')
# naive exec: escapes: codecs re-exports the builtins module
import json
subprocess = json.codecs.builtins.__import__("subprocess")
result = "ESCAPED " + subprocess.__name__
