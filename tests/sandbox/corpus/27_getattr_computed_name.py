# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: getattr with a computed name: getattr(app, 'con' + 'fig')
# naive exec: escapes: the name is built at run time, so no static check sees it
name = "con" + "fig"
result = "ESCAPED " + getattr(app, name)["SECRET_KEY"]
