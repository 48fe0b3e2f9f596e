# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: json.__spec__.loader.__class__ -> importlib machinery -> import os
# naive exec: escapes: the module spec's loader class lives in importlib, whose sys imports anything
import json
loader_globals = json.__spec__.loader.__class__.__init__.__globals__
os_module = loader_globals["sys"].modules["os"]
result = "ESCAPED " + os_module.sep
