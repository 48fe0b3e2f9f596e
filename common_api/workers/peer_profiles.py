"""``scope=all`` for /profile and /memory: every worker of the server runs the same window.

The answering worker sends a ``window`` request over the peer channel to every other live
worker (what to run, and when the window starts and ends, a little ahead so that every
worker starts together), runs its own part meanwhile, and collects their answers within
one deadline: the window's end plus a grace. Each worker runs its part on the channel's
request thread and answers with it; one that does not answer by the deadline (stopped,
exited, too busy) is named with the cause, never waited for. Nothing is written to disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from common_api.errors import Unavailable, describe_error
from common_api.peer_channel import Replies
from common_api.services.memory import MemoryReport, MemoryWindow
from common_api.services.profiler import MemoryRequest, ProfileRequest
from common_api.services.sampling import Frame, Profile, Sampler

log = logging.getLogger(__name__)

WINDOW = "window"        # the peer channel's request: run this window, answer with it
LEAD_SECONDS = 0.1       # the window starts this long after the request goes out
ANSWER_GRACE = 3.0       # how long after the window's end a worker's part may come in
MAX_WINDOW_SECONDS = 3600.0  # a request for a longer window is refused unread
T = TypeVar("T")
BeginAsking = Callable[[str, object, float], Callable[[], Replies]]


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    return {"frames": [[f.name, f.file, f.line, f.kind] for f in profile.frames],
            "stacks": [[list(stack), count] for stack, count in profile.stacks.items()],
            "duration": profile.duration, "hz": profile.hz, "ticks": profile.ticks,
            "started_at": profile.started_at}


def profile_from_dict(data: dict[str, Any]) -> Profile:
    return Profile([Frame(str(n), str(f), int(line), str(k)) for n, f, line, k in data["frames"]],
                   {tuple(int(i) for i in stack): int(count) for stack, count in data["stacks"]},
                   float(data["duration"]), int(data["hz"]), int(data["ticks"]),
                   float(data["started_at"]))


def _decoded(answers: dict[int, Any], missing: dict[int, str],
             decode: Callable[[dict[str, Any]], T]) -> tuple[dict[int, T], dict[int, str]]:
    """The other workers' answers decoded (this worker's is already an object); an answer
    that cannot be read makes its worker missing rather than failing the request."""
    decoded: dict[int, T] = {}
    for pid, data in answers.items():
        if not isinstance(data, dict):
            decoded[pid] = data
            continue
        try:
            decoded[pid] = decode(data)
        except (KeyError, TypeError, ValueError):
            missing[pid] = "its answer could not be read"
    return decoded, missing


class PeerWindows:
    """The window exchange of one server's workers (one per worker runtime)."""

    def __init__(self, begin_asking: BeginAsking) -> None:
        self._begin_asking = begin_asking

    # the answering worker's side

    def profiles(self, request: ProfileRequest, run_own: Callable[[], Profile]
                 ) -> tuple[dict[int, Profile], dict[int, str]]:
        answers, missing = self._ask("profile", request.to_dict(), request.seconds, run_own)
        return _decoded(answers, missing, profile_from_dict)

    def memory(self, request: MemoryRequest, run_own: Callable[[], MemoryReport]
               ) -> tuple[dict[int, MemoryReport], dict[int, str]]:
        answers, missing = self._ask("memory", request.to_dict(), request.seconds, run_own)
        return _decoded(answers, missing, MemoryReport.from_dict)

    def _ask(self, kind: str, params: dict[str, Any], seconds: float,
             run_own: Callable[[], Any]) -> tuple[dict[int, Any], dict[int, str]]:
        start = time.time() + LEAD_SECONDS
        try:
            finish = self._begin_asking(
                WINDOW, {"kind": kind, "params": params, "start": start,
                         "end": start + seconds},
                LEAD_SECONDS + seconds + ANSWER_GRACE)
        except OSError as error:  # out of file descriptors, say
            raise Unavailable(f"Cannot ask the other workers for their part of the window "
                              f"({describe_error(error)})") from None
        time.sleep(max(0.0, start - time.time()))
        own = run_own()
        replies = finish()
        return {**replies.answers, os.getpid(): own}, dict(replies.missing)

    # every worker's side

    def answer(self, body: object) -> dict[str, Any]:
        """The peer channel's ``window`` request: run this worker's part, answer with it."""
        if not isinstance(body, dict):
            raise ValueError("not a window request")
        kind, params = body.get("kind"), body.get("params")
        start, end = float(body["start"]), float(body["end"])
        if kind not in ("profile", "memory") or not isinstance(params, dict):
            raise ValueError("not a window request")
        if end - start > MAX_WINDOW_SECONDS or end - time.time() > MAX_WINDOW_SECONDS:
            raise ValueError("window too long")
        time.sleep(max(0.0, start - time.time()))
        seconds = end - time.time()
        if seconds <= 0:
            raise ValueError("the window is over")
        if kind == "profile":
            sampler = Sampler(int(params["hz"]), params.get("name"), bool(params["drop_idle"]))
            return profile_to_dict(sampler.run(seconds))
        return MemoryWindow().measure(seconds, int(params["top"]),
                                      str(params["group"])).to_dict()
