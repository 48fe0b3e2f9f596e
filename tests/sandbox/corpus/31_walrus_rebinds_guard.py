# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: walrus rebinding of a guard name (_getattr_) before a dunder walk
# naive exec: escapes: the naive sandbox has no guard, the dunder walk succeeds
(_getattr_ := lambda obj, name: obj.__dict__[name])
result = "ESCAPED " + str(len(().__class__.__base__.__subclasses__()))
