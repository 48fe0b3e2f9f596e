# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: operator.attrgetter('__class__.__base__.__subclasses__')
# naive exec: escapes: attrgetter resolves dotted dunder paths
import operator
subclasses = operator.attrgetter("__class__.__base__.__subclasses__")(())
result = "ESCAPED " + str(len(subclasses()))
