# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: operator.methodcaller('format', app) on a format string
# naive exec: escapes: methodcaller calls str.format by name
import operator
result = operator.methodcaller("format", app)("ESCAPED {0.config[SECRET_KEY]}")
