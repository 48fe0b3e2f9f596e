"""``/profile`` and ``/memory`` as a service: their parameters, their limits, one window at
a time per server, and (``scope=all``) the other workers' part of the same window."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from common_api.errors import InvalidInput
from common_api.flags import SPELLINGS, read_flag
from common_api.services.exclusive import ExclusiveWindow
from common_api.services.memory import GROUPS, MemoryReport, MemoryWindow
from common_api.services.recorder import FlightRecorder, Span
from common_api.services.sampling import Profile, Sampler, merge_profiles

DEFAULT_SECONDS = 10.0
DEFAULT_HZ = 100
MAX_HZ = 1000
DEFAULT_TOP = 25
MAX_TOP = 1000
PROFILE_FORMATS = ("collapsed", "speedscope", "svg", "json")
MEMORY_FORMATS = ("text", "json")
SCOPES = ("worker", "all")


def _positive_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"Invalid {name}: {raw} (a number of seconds more than 0)")
    return value


def _seconds(args: Mapping[str, str], limit: float, limit_key: str) -> float:
    raw = args.get("seconds")
    if raw is None:
        return min(DEFAULT_SECONDS, limit)
    value = _positive_seconds("seconds", raw)
    if value > limit:
        raise InvalidInput(f"Invalid seconds: {raw} is over the limit of {limit:g} seconds "
                           f"({limit_key})")
    return value


def _integer(args: Mapping[str, str], name: str, default: int, highest: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= highest:
        raise InvalidInput(f"Invalid {name}: {raw} (an integer from 1 to {highest})")
    return int(text)


def _choice(args: Mapping[str, str], name: str, choices: tuple[str, ...],
            default: str) -> str:
    value = args.get(name, default)
    if value not in choices:
        raise InvalidInput(f"Invalid {name}: {value}. Valid values: {', '.join(choices)}")
    return value


def parse_flag(args: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A true/false query parameter (``common_api.flags``), as every endpoint reads them;
    ``InvalidInput`` naming the parameter otherwise."""
    raw = args.get(name)
    if raw is None:
        return default
    flag = read_flag(raw)
    if flag is None:
        raise InvalidInput(f"Invalid value for {name}: {raw}. Valid values: {SPELLINGS}")
    return flag


def _last(args: Mapping[str, str], kept: float, kept_key: str) -> float | None:
    """``last``: seconds of the history to answer from (None: run a window instead)."""
    raw = args.get("last")
    if raw is None:
        return None
    for other in ("seconds", "hz"):
        if other in args:
            raise InvalidInput(f"Invalid {other} with last: the history was sampled already; "
                               f"give last or {other}, not both")
    value = _positive_seconds("last", raw)
    if kept <= 0:
        raise InvalidInput(f"Invalid last: {raw}; no history is kept ({kept_key} is 0)")
    if value > kept:
        raise InvalidInput(f"Invalid last: {raw} is beyond the {kept:g} seconds of history "
                           f"kept ({kept_key})")
    return value


@dataclass(frozen=True)
class ProfileRequest:
    seconds: float
    hz: int
    name: str | None
    drop_idle: bool
    all_workers: bool
    last: float | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str], max_seconds: float, limit_key: str,
              history_seconds: float = 0.0, history_key: str = "") -> ProfileRequest:
        """From query parameters; ``InvalidInput`` naming the parameter otherwise."""
        last = _last(args, history_seconds, history_key)
        return cls(seconds=0.0 if last is not None else _seconds(args, max_seconds, limit_key),
                   hz=0 if last is not None else _integer(args, "hz", DEFAULT_HZ, MAX_HZ),
                   name=args.get("name"),
                   drop_idle=not parse_flag(args, "idle", True),
                   all_workers=_choice(args, "scope", SCOPES, "worker") == "all",
                   last=last)

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "hz": self.hz, "name": self.name,
                "drop_idle": self.drop_idle, "last": self.last}


@dataclass(frozen=True)
class MemoryRequest:
    seconds: float
    top: int
    group: str
    all_workers: bool

    @classmethod
    def parse(cls, args: Mapping[str, str], max_seconds: float, limit_key: str
              ) -> MemoryRequest:
        return cls(seconds=_seconds(args, max_seconds, limit_key),
                   top=_integer(args, "top", DEFAULT_TOP, MAX_TOP),
                   group=_choice(args, "group", GROUPS, "lineno"),
                   all_workers=_choice(args, "scope", SCOPES, "worker") == "all")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "top": self.top, "group": self.group}


class PeerWindows(Protocol):
    """The other workers' share of a window (``workers/peer_profiles.py``)."""

    def profiles(self, request: ProfileRequest, run_own: Callable[[], Profile]
                 ) -> tuple[dict[int, Profile], dict[int, str]]: ...

    def memory(self, request: MemoryRequest, run_own: Callable[[], MemoryReport]
               ) -> tuple[dict[int, MemoryReport], dict[int, str]]: ...


class PeerHistories(Protocol):
    """The other workers' histories of the same span (``workers/peer_histories.py``)."""

    def histories(self, request: ProfileRequest
                  ) -> tuple[dict[int, Profile], dict[int, str]]: ...


@dataclass(frozen=True)
class WorkersMemory:
    """``/memory?scope=all``: each worker's report, and the workers that took no part."""

    reports: dict[int, MemoryReport]
    missing: dict[int, str]

    def to_dict(self) -> dict[str, Any]:
        return {"workers": [{"pid": pid, **report.to_dict()}
                            for pid, report in sorted(self.reports.items())],
                "missing_workers": {str(pid): why for pid, why in sorted(self.missing.items())}}

    def render(self) -> str:
        blocks = [f"=== Worker {pid} ===\n{report.render()}"
                  for pid, report in sorted(self.reports.items())]
        blocks += [f"=== Worker {pid}: no report ({why}) ===\n"
                   for pid, why in sorted(self.missing.items())]
        return "\n".join(blocks)


class Profiler:
    """Runs profile and memory windows for this worker (and, when asked, with its peers)."""

    def __init__(self, max_seconds: float, limit_key: str,
                 server_lock: Callable[[str], AbstractContextManager[object]] | None = None,
                 peers: PeerWindows | None = None, recorder: FlightRecorder | None = None,
                 history_seconds: float = 0.0, history_key: str = "",
                 history_peers: PeerHistories | None = None) -> None:
        self.max_seconds = max_seconds
        self.limit_key = limit_key
        self.peers = peers
        self.recorder = recorder
        self.history_seconds = history_seconds if recorder is not None else 0.0
        self.history_key = history_key
        self.history_peers = history_peers
        self._cpu = ExclusiveWindow("profile", server_lock and (lambda: server_lock("profile")))
        self._memory = ExclusiveWindow("memory window",
                                       server_lock and (lambda: server_lock("memory")))

    def parse_profile(self, args: Mapping[str, str]) -> ProfileRequest:
        return ProfileRequest.parse(args, self.max_seconds, self.limit_key,
                                    self.history_seconds, self.history_key)

    def parse_memory(self, args: Mapping[str, str]) -> MemoryRequest:
        return MemoryRequest.parse(args, self.max_seconds, self.limit_key)

    def recorded(self, request: ProfileRequest) -> tuple[Profile, Span]:
        """This worker's history of the last ``request.last`` seconds (answered at once,
        beside any window that runs)."""
        if self.recorder is None or request.last is None:
            raise InvalidInput("Invalid last: no history is kept")
        return self.recorder.history.profile(request.last, time.monotonic(), time.time(),
                                             request.name, request.drop_idle)

    def profile(self, request: ProfileRequest) -> Profile:
        if request.last is not None:
            return self.recorded_by_all(request) if request.all_workers \
                else self.recorded(request)[0]
        with self._cpu.hold():
            def own() -> Profile:
                return Sampler(request.hz, request.name, request.drop_idle).run(request.seconds)

            if not request.all_workers:
                return own()
            started = time.time()
            parts, missing = (self.peers.profiles(request, own) if self.peers
                              else ({os.getpid(): own()}, {}))
            merged = merge_profiles({f"worker {pid}": part for pid, part in sorted(parts.items())},
                                    duration=max(p.duration for p in parts.values()),
                                    hz=request.hz, ticks=parts[os.getpid()].ticks,
                                    started_at=started)
            merged.missing_workers = {str(pid): why for pid, why in sorted(missing.items())}
            return merged

    def recorded_by_all(self, request: ProfileRequest) -> Profile:
        """Every worker's history of the last ``request.last`` seconds, each under a
        ``worker <pid>`` root; the workers that gave none are named."""
        own = self.recorded(request)[0]
        parts, missing = (self.history_peers.histories(request) if self.history_peers
                          else ({}, {}))
        parts[os.getpid()] = own
        merged = merge_profiles({f"worker {pid}": part for pid, part in sorted(parts.items())},
                                duration=max(p.duration for p in parts.values()),
                                hz=own.hz, ticks=max(p.ticks for p in parts.values()),
                                started_at=min(p.started_at for p in parts.values()))
        merged.missing_workers = {str(pid): why for pid, why in sorted(missing.items())}
        return merged

    def memory(self, request: MemoryRequest) -> MemoryReport | WorkersMemory:
        with self._memory.hold():
            def own() -> MemoryReport:
                return MemoryWindow().measure(request.seconds, request.top, request.group)

            if not request.all_workers:
                return own()
            reports, missing = (self.peers.memory(request, own) if self.peers
                                else ({os.getpid(): own()}, {}))
            return WorkersMemory(reports, missing)
