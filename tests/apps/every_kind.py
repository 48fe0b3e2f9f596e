"""A host that registers every kind of metric an LMCache component does (issue 17).

Served as ``every_kind:app`` by real gunicorn, and imported in one plain process by the
tests as the reference (``generate_latest(REGISTRY)`` after the same requests):

- file-backed: ``host_work`` (counter), ``host_work_seconds`` (histogram),
  ``host_payload_bytes`` (summary), ``host_inflight`` (gauge set by value, livesum);
- ``set_function`` gauges: ``host_queue_size`` (mode all, reads 7), ``host_keys``
  (livesum, reads 2), ``host_pool_bytes{pool}`` (max, reads 100 x the pool number);
- ``host_build`` (Info) and ``host_lifecycle`` (Enum);
- ``HostCollector``, a custom collector: ``host_custom_events`` (counter, 5),
  ``host_custom_limit`` (gauge, 3, alike in every worker) and ``host_custom_pid`` (gauge,
  the worker's pid, different in every worker);
- OpenTelemetry's Prometheus bridge: ``otel_work`` counter, one per ``/work``;
- ``host_broken`` (a ``set_function`` gauge whose callback raises), registered only when
  ``EVERY_KIND_BROKEN=1``.

``/work`` counts one unit of work in each; ``/pid`` answers the worker's pid; ``/block?s=N``
stalls the whole worker for N seconds (at most 10), holding the GIL in a C call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from gil_hold import hold_gil
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from common_api import bp

work = Counter("host_work", "Units of work")
work_seconds = Histogram("host_work_seconds", "Time per unit of work")
payload = Summary("host_payload_bytes", "Payload per unit of work")
inflight = Gauge("host_inflight", "Work in flight", multiprocess_mode="livesum")
inflight.set(1)

Gauge("host_queue_size", "Queue size, read at scrape time").set_function(lambda: 7)
Gauge("host_keys", "Keys held, read at scrape time",
      multiprocess_mode="livesum").set_function(lambda: 2)
pools = Gauge("host_pool_bytes", "Pool size, read at scrape time", ["pool"],
              multiprocess_mode="max")
for number in (1, 2):
    pools.labels(str(number)).set_function(lambda number=number: 100.0 * number)

Info("host_build", "Build information").info({"version": "1.2.3", "commit": "abc"})
Enum("host_lifecycle", "Lifecycle state", states=["starting", "serving", "draining"]
     ).state("serving")


class HostCollector:
    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("host_custom_events", "Events a custom collector counts",
                                  value=5)
        yield GaugeMetricFamily("host_custom_limit", "A limit alike in every worker", value=3)
        yield GaugeMetricFamily("host_custom_pid", "Different in every worker",
                                value=os.getpid())


REGISTRY.register(HostCollector())


def _broken() -> float:
    raise RuntimeError("the cache is gone")


if os.environ.get("EVERY_KIND_BROKEN") == "1":
    Gauge("host_broken", "A callback that raises").set_function(_broken)

meter = MeterProvider(metric_readers=[PrometheusMetricReader()]).get_meter("every_kind")
otel_work = meter.create_counter("otel_work", description="Units of work, counted by OTel")

app = Flask("every_kind")
app.register_blueprint(bp)


@app.get("/work")
def do_work() -> ResponseReturnValue:
    work.inc()
    work_seconds.observe(0.02)
    payload.observe(512)
    otel_work.add(1)
    return jsonify(pid=os.getpid())


@app.get("/pid")
def pid() -> ResponseReturnValue:
    return jsonify(pid=os.getpid())


@app.get("/block")
def block() -> ResponseReturnValue:
    hold_gil(min(float(request.args.get("s", "3")), 10.0))
    return jsonify(pid=os.getpid())
