# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: the privileged or file-reading members of allowed modules (time.clock_settime_ns, time.tzset, uuid.getnode/uuid1, hashlib.file_digest, random.seed), the unvetted modules of the wide allowlist (enum, mimetypes, mailcap) and the modules that reach files, processes, signals and the environment
# red team: 6d8a476, wide allowlist
import time, uuid, hashlib, random

reached = []
for module, name in ((time, "clock_settime_ns"), (time, "clock_settime"), (time, "tzset"),
                     (time, "pthread_getcpuclockid"), (time, "get_clock_info"), (uuid, "getnode"),
                     (uuid, "uuid1"), (uuid, "_load_system_functions"), (hashlib, "file_digest"),
                     (random, "seed"), (random, "Random"), (random, "SystemRandom"), (random, "_inst")):
    try:
        reached.append(getattr(module, name))
    except AttributeError:
        pass
for name in ("enum", "mimetypes", "mailcap", "os", "posix", "sys", "_thread", "signal",
             "_signal", "faulthandler", "subprocess", "_posixsubprocess", "pty", "io", "_io",
             "pathlib", "posixpath", "genericpath", "tempfile", "shutil", "ctypes",
             "resource"):  # uu: see 130 and 131
    try:
        reached.append(__import__(name))
    except ImportError:
        pass
if reached:
    result = "ESCAPED " + repr(reached)
