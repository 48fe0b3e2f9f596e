# ruff: noqa - a hostile script, kept as written
# threat: 4 evaluate code or attribute paths outside the checks
# technique: match statement class pattern app.__class__(config=cfg) reads attributes
# naive exec: escapes: class patterns read attributes without any getattr hook
match app:
    case app.__class__(config=cfg):
        result = "ESCAPED " + cfg["SECRET_KEY"]
