"""werkzeug's private code that common_api relies on, checked at import.

Where a host's prometheus-flask-exporter serves the same path as the blueprint's
``/metrics``, the exporter's rule is pointed at the blueprint's endpoint after the map
indexed it. werkzeug has no public way to change a bound rule's endpoint: its
``endpoint`` is set and the map's ``_rules_by_endpoint`` index moved with it. Checked on
a throwaway map: the moved rule matches under its new endpoint and is indexed there.
"""

from __future__ import annotations

from werkzeug.routing import Map, Rule

from common_api.compat import require

LIBRARY = "werkzeug"
REPOINT_FEATURE = "sharing a host exporter's /metrics route with the blueprint's"


def repoint(url_map: Map, rule: Rule, endpoint: str) -> None:
    """Make ``rule`` of ``url_map`` dispatch to ``endpoint``."""
    index = url_map._rules_by_endpoint
    old = index.get(rule.endpoint, [])
    if rule in old:
        old.remove(rule)
        if not old:
            del index[rule.endpoint]
    rule.endpoint = endpoint
    index.setdefault(endpoint, []).append(rule)


def _repoint_holds() -> bool:
    rule = Rule("/shape", endpoint="before")
    url_map = Map([rule])
    repoint(url_map, rule, "after")
    matched = url_map.bind("localhost").match("/shape")
    return matched == ("after", {}) and list(url_map.iter_rules("after")) == [rule] and \
        "before" not in url_map._rules_by_endpoint


REPOINT = require(REPOINT_FEATURE, LIBRARY, {
    "Map._rules_by_endpoint and Rule.endpoint set after binding": _repoint_holds,
})
