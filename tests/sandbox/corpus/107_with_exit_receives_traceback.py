# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: a with-block's __exit__ receives the real exception class and traceback of an error raised inside the sandbox's guards; the traceback is copied, pprinted, fed to statistics and bisect, and the guard's ImportBlocked class subclassed
# red team: 6d8a476, wide allowlist
import copy, pprint, statistics, bisect

class Catch:
    def __enter__(self):
        return self
    def __exit__(self, kind, value, tb):
        self.got = (kind, value, tb)
        return True

catch = Catch()
with catch:
    import os
kind, value, tb = catch.got
attempts = [lambda: getattr(tb, "tb_frame"), lambda: copy.copy(tb), lambda: copy.deepcopy(tb),
            lambda: statistics.mean([tb]), lambda: bisect.insort(tb, 1),
            lambda: getattr(value, "__traceback__"), lambda: getattr(kind, "__module__"),
            lambda: getattr(kind, "__subclasses__")]
for attempt in attempts:
    try:
        got = attempt()
        result = "ESCAPED " + repr(got)
    except (AttributeError, TypeError):
        pass

class Blocked(kind):  # a subclass of the guard's ImportBlocked: an exception class, nothing more
    pass
if Blocked("x").args != ("x",):
    result = "ESCAPED"
