# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: app.request_class.json_module.provider.uuid.os: os in 5 public hops
# naive exec: escapes: every hop is a public attribute of a live Flask app
os_module = app.request_class.json_module.provider.uuid.os
result = "ESCAPED " + os_module.getcwd()
