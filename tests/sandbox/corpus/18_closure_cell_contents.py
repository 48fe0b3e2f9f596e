# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: a closure's __closure__[0].cell_contents
# naive exec: escapes: closure cells are readable
def outer():
    secret = "cell-value"

    def inner():
        return secret

    return inner


result = "ESCAPED " + outer().__closure__[0].cell_contents
