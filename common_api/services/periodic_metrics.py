"""Periodic-thread series for /metrics, read from status snapshots at scrape time.

Nothing is recorded while threads run: the collector turns the current snapshots into
series when Prometheus scrapes, so a run costs no metric update.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from common_api.services.periodic_status import PeriodicStatusService

PREFIX = "common_api_periodic_thread"


class PeriodicThreadCollector:
    """Exports runs, failures, last run, activity and interval per thread and level, and
    the component's health (the rule of /periodic-threads-health) and worker count."""

    def __init__(self, service: PeriodicStatusService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        statuses = self._service.statuses()
        health = self._service.health(statuses)
        extra = ["pid"] if any("pid" in s for s in statuses) else []
        labels = ["thread", "level", *extra]
        runs = CounterMetricFamily(f"{PREFIX}_runs", "Runs of a periodic thread", labels=labels)
        failures = CounterMetricFamily(f"{PREFIX}_failures", "Failed runs of a periodic thread",
                                       labels=labels)
        last_run = GaugeMetricFamily(f"{PREFIX}_last_run_timestamp_seconds",
                                     "Unix time at which the last run began", labels=labels)
        active = GaugeMetricFamily(f"{PREFIX}_active", "1 when the thread is active",
                                   labels=labels)
        running = GaugeMetricFamily(f"{PREFIX}_running", "1 when the thread is running",
                                    labels=labels)
        interval = GaugeMetricFamily(f"{PREFIX}_interval_seconds",
                                     "Configured interval between runs", labels=labels)
        for status in statuses:
            values = [status["name"], status["level"], *(str(status[k]) for k in extra)]
            runs.add_metric(values, status["total_runs"])
            failures.add_metric(values, status["failed_runs"])
            if status["last_run_time"] is not None:
                when = datetime.fromisoformat(status["last_run_time"]).timestamp()
                last_run.add_metric(values, when)
            active.add_metric(values, 1.0 if status["is_active"] else 0.0)
            running.add_metric(values, 1.0 if status["is_running"] else 0.0)
            interval.add_metric(values, status["interval"])
        healthy = GaugeMetricFamily("common_api_healthy",
                                    "1 when every critical and high periodic thread is active",
                                    value=1.0 if health["healthy"] else 0.0)
        workers = GaugeMetricFamily("common_api_workers", "Live worker processes of the server",
                                    value=float(health["workers"]))
        return [runs, failures, last_run, active, running, interval, healthy, workers]
