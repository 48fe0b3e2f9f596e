# ruff: noqa - a hostile script, kept as written
# threat: 6 leave state behind for later scripts
# technique: the enum getattr gadget's os.fork, os.setsid, os.execv("/bin/sleep"): a process in its own session outlives the request
# why: the runner kills the child's process group only; a grandchild in a new session escapes it (and as root RLIMIT_NPROC does not bind)
# escapes: runner a75ee23, wide allowlist
import enum
import re
import time

real_getattr = enum.pickle_by_enum_name(re.IGNORECASE, 2)[0]
module_globals = real_getattr(enum.pickle_by_enum_name, "__globals__")
os = real_getattr(real_getattr(module_globals["sys"], "modules")["os"], "__dict__")
real_open = module_globals["__builtins__"]["open"]

TAG = "common-api-corpus-orphan"  # the test finds (and kills) the process by this name
pid = os["fork"]()
if pid == 0:
    try:
        os["setsid"]()
        os["execv"]("/bin/sleep", [TAG, "30"])
    finally:
        os["_exit"](0)
started = False
for _ in range(200):  # until the grandchild has exec'd (2 s at most)
    try:
        handle = real_open("/proc/%d/cmdline" % pid, "rb")
        started = real_getattr(handle, "read")().startswith(TAG.encode())
        real_getattr(handle, "close")()
    except Exception:
        pass
    if started:
        break
    time.sleep(0.01)
if not started:
    raise RuntimeError("no process started")
result = "ESCAPED process %d (%s) runs in its own session" % (pid, TAG)
