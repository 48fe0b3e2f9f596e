"""What prometheus_client's registry and gauges hold but do not expose publicly, read in
this one module (prometheus_client 0.18 to 0.26 alike):

- ``CollectorRegistry._collector_to_names`` and ``._lock``: the collectors of a registry,
  so the live part of a scrape collects only what the multiprocess files do not carry,
  without reading every file-backed value of the process;
- ``Gauge._child_samples`` as an instance attribute: how ``set_function`` replaces a
  gauge's value (the only trace it leaves); ``Gauge._metrics``, ``._labelnames`` and
  ``._lock``: a labelled gauge's children;
- ``Gauge._multiprocess_mode``: how the gauge's values of several processes combine.

If a later prometheus_client changes these, ``RegistryLayoutChanged`` is raised (the scrape
answers 503 naming it) rather than metrics silently left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client import Gauge
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from common_api.errors import Unavailable


class RegistryLayoutChanged(Unavailable):
    """prometheus_client no longer keeps its collectors where this module reads them."""

    def __init__(self, error: AttributeError) -> None:
        super().__init__(f"Metrics unavailable: prometheus_client has changed ({error}); "
                         "common_api cannot read the live part of /metrics")


def registered_collectors(registry: CollectorRegistry) -> list[Collector]:
    try:
        with registry._lock:
            return list(registry._collector_to_names)
    except AttributeError as error:
        raise RegistryLayoutChanged(error) from None


@dataclass(frozen=True)
class GaugeSeries:
    """One series of a gauge: its labels, whether ``set_function`` feeds it, and how to
    read its value now (a callback's exceptions propagate)."""

    labels: dict[str, str]
    from_function: bool
    read: Callable[[], Iterable[Sample]]


def gauge_series(gauge: Gauge, callbacks_only: bool = False) -> list[GaugeSeries]:
    """The gauge's series (only those fed by ``set_function`` with ``callbacks_only``,
    the cheap question a scrape asks of every gauge)."""
    try:
        names = tuple(gauge._labelnames)
        children: list[tuple[Sequence[str], Gauge]] = [((), gauge)]
        if names:
            with gauge._lock:
                children = cast(list[tuple[Sequence[str], Gauge]],
                                list(gauge._metrics.items()))
        return [GaugeSeries(dict(zip(names, values, strict=True)), fed, child._child_samples)
                for values, child in children
                if (fed := "_child_samples" in vars(child)) or not callbacks_only]
    except AttributeError as error:
        raise RegistryLayoutChanged(error) from None


def gauge_mode(gauge: Gauge) -> str:
    return str(getattr(gauge, "_multiprocess_mode", "all"))
