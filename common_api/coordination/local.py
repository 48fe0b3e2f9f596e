"""One process serves the component: nothing to share."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.registry import Collector, CollectorRegistry

from common_api.periodic import PeriodicThreadRegistry
from common_api.services.live_metrics import RegistryReader
from common_api.services.loglevels import LevelPublisher
from common_api.services.metrics import BaselineStore, MemoryBaselineStore
from common_api.services.periodic_status import Status, thread_status
from common_api.services.profiler import PeerHistories, PeerWindows
from common_api.services.tasks_workers import WorkerTasks
from common_api.services.threads import PeerDump

PeerDumps = list[PeerDump]


class LocalCoordination:
    shared = False

    def __init__(self) -> None:
        self._baseline = MemoryBaselineStore()

    def expect_workers(self, count: int, register: bool = True) -> None:
        return None

    def ensure_started(self) -> None:
        return None

    def level_publisher(self) -> LevelPublisher | None:
        return None

    def baseline_store(self, ordinal: int = 0) -> BaselineStore:
        return self._baseline  # one process: its values are all here

    def metric_sources(self, registry: CollectorRegistry, peer_timeout: float = 1.0
                       ) -> list[Collector]:
        # one process: the live part is the whole default registry, each collector and
        # callback read on its own so that one that raises loses only its own series
        return [RegistryReader(REGISTRY, multiprocess=False), registry]

    def statuses(self) -> list[Status]:
        return [thread_status(thread)
                for thread in PeriodicThreadRegistry.get_instance().threads()]

    def start(self) -> None:
        return None  # one process: nothing to start

    def worker_count(self) -> int:
        return 1

    def booting_count(self) -> int:
        return 0

    def worker_problems(self) -> list[dict[str, Any]]:
        return []

    def peer_dumps(self) -> PeerDumps:
        return []

    def peer_tasks(self) -> list[WorkerTasks]:
        return []

    def window_lock(self, name: str) -> AbstractContextManager[object]:
        return contextlib.nullcontext()  # one process: its own lock is the server's

    def peer_windows(self) -> PeerWindows | None:
        return None

    def peer_histories(self) -> PeerHistories | None:
        return None
