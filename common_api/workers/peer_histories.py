"""``/profile?last=&scope=all``: every worker's history of the same span, over the peer
channel. Each worker answers from its own flight recorder (``common_api.services.recorder``) at
once; nothing goes through the state directory, so its faults do not touch the answer."""

from __future__ import annotations

import time
from typing import Any

from common_api.services.profiler import ProfileRequest
from common_api.services.recorder import process_recorder
from common_api.services.sampling import Profile
from common_api.workers.peer_link import PeerLink
from common_api.workers.peer_profiles import profile_from_dict, profile_to_dict

PROFILE_HISTORY = "profile-history"
#: seconds the other workers have to answer: a history is read at once, so a worker that
#: takes longer is stopped or too busy, and is named instead
ANSWER_SECONDS = 3.0


def answer_history(body: Any) -> dict[str, Any]:
    """A worker's side: its history of the span asked for (ValueError when it keeps none
    or the request is not one)."""
    recorder = process_recorder()
    if recorder is None:
        raise ValueError("this worker keeps no history (COMMON_API_PROFILE_HISTORY_SECONDS=0)")
    if not isinstance(body, dict):
        raise ValueError("the request is not an object")
    last, name, drop_idle = body.get("last"), body.get("name"), body.get("drop_idle")
    if isinstance(last, bool) or not isinstance(last, int | float) or not 0 < last <= 86400:
        raise ValueError("last is not a number of seconds")
    if name is not None and not isinstance(name, str):
        raise ValueError("name is not a string")
    profile = recorder.history.profile(float(last), time.monotonic(), time.time(), name,
                                       bool(drop_idle))[0]
    return profile_to_dict(profile)


class PeerHistories:
    """Asks the server's other workers for their history over ``link``; answers theirs."""

    def __init__(self, link: PeerLink, timeout: float = ANSWER_SECONDS) -> None:
        self._link = link
        self._timeout = timeout
        link.handle(PROFILE_HISTORY, answer_history)

    def histories(self, request: ProfileRequest
                  ) -> tuple[dict[int, Profile], dict[int, str]]:
        body = {"last": request.last, "name": request.name, "drop_idle": request.drop_idle}
        replies = self._link.ask_siblings(PROFILE_HISTORY, body, self._timeout)
        profiles: dict[int, Profile] = {}
        missing = dict(replies.missing)
        for pid, answer in replies.answers.items():
            try:
                profiles[pid] = profile_from_dict(answer)
            except (KeyError, TypeError, ValueError) as error:
                missing[pid] = f"answer unreadable ({type(error).__name__})"
        return profiles, missing
