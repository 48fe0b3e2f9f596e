"""prometheus-flask-exporter's private layout that common_api relies on, checked at import.

A host's own ``PrometheusMetrics`` bound to the app is found by the functions it
registered: its request hooks (made in ``export_defaults``) and its ``/metrics`` view (made
in ``register_endpoint``) are closures over the exporter, ``self``. The library offers no
public way to ask an app for its exporter. Checked: ``export_defaults`` makes closures over
``self``, and the view a throwaway exporter registers on a throwaway app leads back to it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics

from common_api.compat import require

LIBRARY = "prometheus-flask-exporter"
EXPORTER_ENDPOINT = "prometheus_metrics"  # the endpoint name PrometheusMetrics registers
HOST_EXPORTER_FEATURE = ("finding the host's own prometheus-flask-exporter (one exposition, "
                         "each request counted once)")


def closure_self(function: Any) -> Any:
    """The ``self`` a nested function of a method closes over, if any."""
    while function is not None:
        code = getattr(function, "__code__", None)
        cells = getattr(function, "__closure__", None) or ()
        if code is not None and "self" in code.co_freevars:
            return cells[code.co_freevars.index("self")].cell_contents
        function = getattr(function, "__wrapped__", None)
    return None


def _view_leads_back() -> bool:
    app = Flask("common_api_shape_check")
    # export_defaults=False: no metric (and no multiprocess file) is made by the check
    exporter = PrometheusMetrics.for_app_factory(registry=CollectorRegistry(),
                                                 path="/metrics", export_defaults=False)
    exporter.init_app(app)
    return closure_self(app.view_functions.get(EXPORTER_ENDPOINT)) is exporter


HOST_EXPORTER = require(HOST_EXPORTER_FEATURE, LIBRARY, {
    "PrometheusMetrics.export_defaults making request hooks that close over self":
        lambda: "self" in PrometheusMetrics.export_defaults.__code__.co_cellvars,
    f"the {EXPORTER_ENDPOINT!r} view closing over its PrometheusMetrics": _view_leads_back,
})
