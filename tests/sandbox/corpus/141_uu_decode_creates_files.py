# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: the uu:decode entry opens the output path it is given with open(path, "wb") and chmods it to the mode of the script's "begin" line: any file is created or truncated to nothing, as the child's user (root here); shown on a scratch directory the host names (tuning.scratch)
# why: DENIED_EXPORTS has no entry for uu; RLIMIT_FSIZE=0 stops the content, not the creation or the truncation
# red team: 6d8a476, wide allowlist plus uu:encode and uu:decode (Python 3.11 and 3.12; 3.13 has no uu)
class Source:
    def __init__(self):
        self.lines = [b"begin 600 x\n", b"end\n"]
    def readline(self):
        return self.lines.pop(0) if self.lines else b""

try:
    import uu
except ImportError:
    uu = None
if uu is not None:
    target = app.state.tuning.scratch + "/created-by-script"
    uu.decode(Source(), target)
    result = "ESCAPED created (or would have truncated) " + target
