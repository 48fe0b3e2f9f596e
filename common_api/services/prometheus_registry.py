"""What prometheus_client's registry and gauges hold but do not expose publicly, read in
this one module (prometheus_client 0.18 to 0.26 alike):

- ``CollectorRegistry._collector_to_names`` and ``._lock``: the collectors of a registry,
  so the live part of a scrape collects only what the multiprocess files do not carry,
  without reading every file-backed value of the process;
- ``Gauge._child_samples`` as an instance attribute: how ``set_function`` replaces a
  gauge's value (the only trace it leaves); ``Gauge._metrics``, ``._labelnames`` and
  ``._lock``: a labelled gauge's children;
- ``Gauge._multiprocess_mode``: how the gauge's values of several processes combine.

If a later prometheus_client changes these, ``registered_collectors`` raises (the scrape
answers 503 naming it) rather than silently leaving metrics out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client import Gauge
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample


class RegistryLayoutChanged(RuntimeError):
    """prometheus_client no longer keeps its collectors where this module reads them."""


def registered_collectors(registry: CollectorRegistry) -> list[Collector]:
    try:
        with registry._lock:
            return list(registry._collector_to_names)
    except AttributeError as error:
        raise RegistryLayoutChanged(
            f"prometheus_client's registry has changed ({error}); common_api cannot list "
            "the collectors of the live part of /metrics") from None


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
    names = tuple(gauge._labelnames)
    children: list[tuple[Sequence[str], Gauge]] = [((), gauge)]
    if names:
        with gauge._lock:
            children = cast(list[tuple[Sequence[str], Gauge]], list(gauge._metrics.items()))
    return [GaugeSeries(dict(zip(names, values, strict=True)), fed, child._child_samples)
            for values, child in children
            if (fed := "_child_samples" in vars(child)) or not callbacks_only]


def gauge_mode(gauge: Gauge) -> str:
    return str(getattr(gauge, "_multiprocess_mode", "all"))
