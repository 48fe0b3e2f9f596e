# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: monkeypatch json.dumps for every later script
# naive exec: escapes: module objects are shared by every exec in the process
# probe: import json\nresult = json.dumps([1])
import json
json.dumps = lambda *args, **kwargs: "ESCAPED poisoned"
result = "patched"
