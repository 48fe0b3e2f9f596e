# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: list[int] is a types.GenericAlias whose __mro_entries__ turns into list in a class statement (a base the class guard refuses) and whose attribute reads forward to list
# red team: 6d8a476, wide allowlist
alias = dict[str, int]
for name in ("fromkeys", "__origin__", "__mro_entries__"):
    try:
        value = getattr(alias, name)
        result = "ESCAPED " + name
    except AttributeError:
        pass

class Built(list[int]):
    pass

result = "ESCAPED a list subclass built: " + repr(Built)
