"""prometheus_client's private code that common_api relies on, checked at import.

- Safe metric files (``safe_files`` in this package): a subclass of ``MmapedDict`` with its
  own constructor and ``_init_value`` is what ``values.MmapedDict`` (the name
  ``MultiProcessValue`` makes its files by) names in this process; ``MmapedDict``'s instance
  attributes ``_f``, ``_m``, ``_fname``, ``_capacity``, ``_used``, ``_positions`` are
  read and set; the per-process ``files`` and ``lock`` that ``values.MultiProcessValue``
  closes over are read.
- Reading the workers' metric files one by one (``common_api.workers.metrics_files``):
  ``MultiProcessCollector._read_metrics`` and ``_accumulate_metrics``; the value file
  layout, read by ``file_reader`` in this package for counters, histograms and summaries.
- Folding an exited worker's files into archives: ``MmapedDict(path)``, its
  ``write_value`` and ``close``, ``MmapedDict.read_all_values_from_file`` and
  ``mmap_key`` (a private module's names).

- The live part of a scrape (``common_api.services.live_metrics``):
  ``CollectorRegistry._collector_to_names`` and ``._lock`` (the collectors of a registry,
  so only what the multiprocess files do not carry is collected live);
  ``Gauge._child_samples`` as an instance attribute (how ``set_function`` replaces a
  gauge's value, the only trace it leaves), ``Gauge._metrics``, ``._labelnames`` and
  ``._lock`` (a labelled gauge's children), ``Gauge._multiprocess_mode``.

A shape that is missing turns its feature off (``common_api.compat``); the callers ask
``SAFE_FILES``, ``METRIC_READS`` and ``FOLD`` before they use them. The live part reads
its shapes when asked and raises ``RegistryLayoutChanged`` (the scrape answers 503 naming
it) rather than leave metrics out silently.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import Gauge, values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from common_api.compat import has_attributes, require
from common_api.compat.prometheus import file_reader
from common_api.errors import Unavailable

LIBRARY = "prometheus-client"
FILE_ATTRIBUTES = ("_f", "_m", "_fname", "_capacity", "_used", "_positions")

__all__ = ["FOLD", "FOLD_FEATURE", "METRIC_READS", "READS_FEATURE", "SAFE_FILES",
           "SAFE_FILES_FEATURE", "GaugeSeries", "MmapedDict", "RegistryLayoutChanged",
           "accumulate_metrics", "gauge_mode", "gauge_series", "mmap_key", "read_metrics",
           "registered_collectors", "value_files", "values_lock"]


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


@functools.cache
def closure_of(cls: type) -> dict[str, Any]:
    """The variables the methods of ``cls`` close over (by name); the objects stay the same
    for the class's life, so they are looked up once."""
    names: dict[str, Any] = {}
    for member in vars(cls).values():
        if inspect.isfunction(member):
            try:
                names.update(inspect.getclosurevars(member).nonlocals)
            except (TypeError, ValueError):
                continue
    return names


def _holds_files_and_lock(cls: type) -> bool:
    found = closure_of(cls)
    lock = found.get("lock")
    return isinstance(found.get("files"), dict) and callable(getattr(lock, "acquire", None))


SAFE_FILES_FEATURE = ("safe metric files (a full or read-only state directory never stops "
                      "a worker)")
READS_FEATURE = "reading each worker's metric files on its own (/metrics of several workers)"
FOLD_FEATURE = "folding an exited worker's metric files into archives"

SAFE_FILES = require(SAFE_FILES_FEATURE, LIBRARY, {
    "MmapedDict.__init__(filename, read_mode)":
        lambda: _parameters(MmapedDict.__init__)[:3] == ["self", "filename", "read_mode"],
    "MmapedDict._init_value(key)":
        lambda: _parameters(MmapedDict._init_value) == ["self", "key"],
    f"MmapedDict attributes {', '.join(FILE_ATTRIBUTES)}":
        lambda: has_attributes(MmapedDict.__init__, *FILE_ATTRIBUTES),
    "the files and lock values.MultiProcessValue closes over":
        lambda: _holds_files_and_lock(values.MultiProcessValue(lambda: 0)),  # type: ignore[no-untyped-call]
    "values.MmapedDict, the name MultiProcessValue makes its files by":
        lambda: getattr(values, "MmapedDict", None) is MmapedDict
        and "MmapedDict(" in inspect.getsource(values.MultiProcessValue),
})

METRIC_READS = require(READS_FEATURE, LIBRARY, {
    "MultiProcessCollector._read_metrics(files)":
        lambda: _parameters(MultiProcessCollector._read_metrics) == ["files"],
    "MultiProcessCollector._accumulate_metrics(metrics, accumulate)":
        lambda: _parameters(MultiProcessCollector._accumulate_metrics)
        == ["metrics", "accumulate"],
})

FOLD = require(FOLD_FEATURE, LIBRARY, {
    "MmapedDict.write_value(key, value, timestamp)":
        lambda: _parameters(MmapedDict.write_value) == ["self", "key", "value", "timestamp"],
    "MmapedDict.close()": lambda: callable(MmapedDict.close),
    "MmapedDict.read_all_values_from_file(filename)":
        lambda: _parameters(MmapedDict.read_all_values_from_file) == ["filename"],
    "mmap_key(metric_name, name, labelnames, labelvalues, help_text)":
        lambda: _parameters(mmap_key) == ["metric_name", "name", "labelnames", "labelvalues",
                                          "help_text"],
})


def uses_files() -> bool:
    """Whether this process's prometheus_client keeps its values in files (multiprocess
    mode, chosen when it was first imported)."""
    return values.ValueClass is not values.MutexValue


def use_value_file_class(cls: type[MmapedDict]) -> None:
    """Have ``values.MultiProcessValue`` make this process's value files as ``cls`` (a
    subclass of ``MmapedDict``): the name it looks up when it makes one."""
    setattr(values, "MmapedDict", cls)  # noqa: B010 (a name prometheus_client does not export)


def value_files() -> dict[str, MmapedDict]:
    """This process's own value files (prefix -> file), as prometheus_client keeps them:
    none in single-process mode. Only when ``SAFE_FILES``."""
    if not uses_files():
        return {}
    found: dict[str, MmapedDict] = closure_of(values.ValueClass)["files"]
    return found


def values_lock() -> Any:
    """The lock prometheus_client holds while it makes or replaces value files (none to
    hold in single-process mode). Only when ``SAFE_FILES``."""
    if not uses_files():
        return contextlib.nullcontext()
    return closure_of(values.ValueClass)["lock"]


def read_metrics(paths: list[str]) -> dict[str, Metric]:
    """The files' families for ``accumulate_metrics`` (``file_reader``)."""
    return file_reader.read_metrics(paths)


def accumulate_metrics(metrics: dict[str, Metric]) -> Iterable[Metric]:
    accumulated: Iterable[Metric] = MultiProcessCollector._accumulate_metrics(  # type: ignore[no-untyped-call]
        metrics, True)
    return accumulated


# ---------------------------------------------------------------- the live part of a scrape

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
