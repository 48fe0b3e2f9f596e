# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: a script object posing as a tzinfo (datetime calls utcoffset/tzname/dst on it), a timezone whose name holds control characters, and datetime's class-level makers
# red team: 6d8a476, wide allowlist
import datetime

class FakeZone:
    def utcoffset(self, dt):
        return datetime.timedelta(0)
    def tzname(self, dt):
        return "ESCAPED"
    def dst(self, dt):
        return None

for make in (lambda: datetime.datetime.now(FakeZone()),
             lambda: datetime.datetime(2024, 1, 1).replace(tzinfo=FakeZone()),
             lambda: datetime.datetime(2024, 1, 1).astimezone(FakeZone())):
    try:
        result = make().strftime("%Z")
    except TypeError:
        pass
zone = datetime.timezone(datetime.timedelta(hours=1), "x\nINFO forged")
shown = datetime.datetime(2024, 1, 1, tzinfo=zone).strftime("%Z")
try:
    getattr(datetime.datetime, "__subclasses__")
    result = "ESCAPED"
except AttributeError:
    pass
