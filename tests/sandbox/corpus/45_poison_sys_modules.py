# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: replace sys.modules['json'] through json.codecs.sys
# naive exec: escapes: later imports of json get the attacker's object
# probe: import json\nresult = 'ESCAPED' if not hasattr(json, 'dumps') else 'clean'
import json
json.codecs.sys.modules["json"] = json.codecs.sys.modules["string"]
result = "patched"
