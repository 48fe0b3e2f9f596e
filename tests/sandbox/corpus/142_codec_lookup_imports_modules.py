# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: str.encode/bytes.decode with codec names make the child import encodings submodules (bz2_codec imports bz2, idna imports stringprep, uu_codec, zlib_codec, rot_13), then look for a way to the loaded modules (json.loads(cls=...), from-import fallback to sys.modules)
# red team: 6d8a476, wide allowlist
import json

loaded = []
for codec in ("bz2_codec", "idna", "uu_codec", "zlib_codec", "rot_13", "punycode", "mbcs",
              "../../os", "os", "encodings.bz2_codec", "unicode_escape"):
    try:
        loaded.append("x".encode(codec))
    except (LookupError, TypeError, UnicodeError, ImportError, ValueError):
        pass
    try:
        loaded.append(b"x".decode(codec))
    except (LookupError, TypeError, UnicodeError, ImportError, ValueError):
        pass
for name in ("bz2", "encodings", "encodings.idna", "stringprep", "codecs"):
    try:
        __import__(name)
        result = "ESCAPED import " + name
    except ImportError:
        pass
try:
    from json import codecs
    result = "ESCAPED " + repr(codecs)
except ImportError:
    pass
