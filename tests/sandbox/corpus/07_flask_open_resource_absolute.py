# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: app.open_resource('/etc/hostname'): a file through the live app
# naive exec: escapes: Flask joins the root path with an absolute path and opens it
with app.open_resource("/etc/hostname") as handle:
    result = "ESCAPED " + handle.read().decode()
