# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: pprint.pprint/pp with a script stream and a script object whose __repr__ and __eq__ record what pprint's internals hand them (context dicts, _safe_key wrappers, the PrettyPrinter)
# red team: 6d8a476, wide allowlist
import pprint

seen = []
class Spy:
    def __repr__(self):
        return "spy"
    def __eq__(self, other):
        seen.append(other)
        return False
    def __hash__(self):
        return 1
    def __lt__(self, other):
        seen.append(other)
        return True

class Stream:
    def write(self, text):
        seen.append(text)

data = {Spy(): [Spy(), {"k": Spy()}], 1: Spy(), "x": {Spy(): Spy()}}
pprint.pprint(data, stream=Stream(), width=5)
pprint.pp(data, stream=Stream(), depth=1)
text = pprint.saferepr(data) + pprint.pformat(data) + str(pprint.isreadable(data))
for item in seen:
    for name in ("__class__", "obj", "_stream", "__globals__"):
        try:
            getattr(item, name)
            if type(item) is not str and type(item) is not int:
                result = "ESCAPED " + name + " of " + repr(item)
        except AttributeError:
            pass
