# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: str.format field lookup: '{0.config[SECRET_KEY]}'.format(app)
# naive exec: escapes: format() performs attribute and item lookups itself
result = "ESCAPED {0.config[SECRET_KEY]}".format(app)
