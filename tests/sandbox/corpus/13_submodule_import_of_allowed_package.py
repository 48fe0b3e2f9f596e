# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: import json.decoder then walk decoder.re.enum.sys
# naive exec: escapes: the allowlist check looks at the top-level name only
import json.decoder
sys_module = json.decoder.re.enum.sys
result = "ESCAPED " + sys_module.platform
