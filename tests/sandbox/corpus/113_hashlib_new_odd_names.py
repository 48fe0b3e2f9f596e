# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: hashlib.new with names that map to private modules or OpenSSL lookups (paths, NUL, md5-sha1, a script object whose __eq__ claims to be any name)
# red team: 6d8a476, wide allowlist
import hashlib

class Liar:
    def __eq__(self, other):
        return True
    def __hash__(self):
        return hash("sha256")

made = []
for name in ("../../../../etc/passwd", "sha256\x00os", "md5-sha1", "_sha256", "os", Liar()):
    try:
        made.append(hashlib.new(name, b"x"))
    except (ValueError, TypeError):
        pass
for h in made:
    try:
        getattr(h, "__class__")
        result = "ESCAPED"
    except AttributeError:
        pass
