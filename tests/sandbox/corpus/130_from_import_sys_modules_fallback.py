# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: "from json import decoder": when the attribute is missing, the interpreter falls back to sys.modules[module.__name__ + ".decoder"]; also dotted, relative and fromlist imports of loaded submodules
# red team: 6d8a476, wide allowlist
seen = []
attempts = [lambda: __import__("json", None, None, ["decoder"]), lambda: __import__("json.decoder"),
            lambda: __import__("decoder", None, None, [], 1), lambda: __import__("collections.abc"),
            lambda: __import__("encodings"), lambda: __import__("_json")]
for attempt in attempts:
    try:
        seen.append(attempt())
    except ImportError:
        pass
from json import decoder
result = "ESCAPED " + repr(decoder)
