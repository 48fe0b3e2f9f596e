# ruff: noqa - a hostile script, kept as written
# threat: 6 leave anything behind for the next script
# technique: change what the next script gets: assign to module facades, vetted classes, plain-data types, the Counter class and a compiled pattern (a script's own Counter instance may take attributes: that is its own object)
# probe: import json, re, collections\nresult = json.dumps([1]) + str(collections.Counter("a")) + str(re.match("a", "a") is not None)
# red team: 6d8a476, wide allowlist
import json, re, collections, datetime

poison = lambda *a, **k: "ESCAPED poisoned"
attempts = [lambda: setattr(json, "dumps", poison), lambda: setattr(datetime.datetime, "now", poison),
            lambda: setattr(str, "upper", poison), lambda: setattr(collections.Counter, "most_common", poison),
            lambda: setattr(re.compile("a"), "match", poison)]
done = 0
for attempt in attempts:
    try:
        attempt()
        done += 1
    except (TypeError, AttributeError):
        pass
if done:
    result = "ESCAPED %d assignments took" % done
