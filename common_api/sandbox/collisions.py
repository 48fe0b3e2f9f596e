"""Values whose hashes a script can choose, counted where the host may keep them.

A script hands values to host methods, and a host may keep them as dict keys for as long
as it runs (a cache with a long TTL). Strings and bytes hash randomly, and small ints hash
to themselves, but an int beyond 61 bits, a tuple, a frozenset or a complex number can be
chosen so that many distinct values share one hash: each insertion into a dict holding
them then walks all the others, and a resize of that dict is quadratic in one C call that
holds the GIL (about 5 s at 87,000 such keys), however many scripts it took to put them
there. One request's containers are bounded by the protocol's hash work; this bounds what
accumulates across requests and scripts: in one worker, at most ``MAX_SAME_HASH`` distinct
values of those kinds with one hash are handed to the host, and a request that would add
another is refused before the host sees it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable

from .protocol import DataLimit

#: distinct values with one hash a worker takes from scripts (a chain this long costs the
#: host's dicts nothing noticeable; colliding by chance, at 64 bits, never happens)
MAX_SAME_HASH = 64
#: hashes remembered; past this the table is halved (see ``_forget_the_fewest``)
MAX_TRACKED_HASHES = 65_536


def _fingerprint(value: object) -> bytes:
    return hashlib.blake2b(repr(value).encode("utf-8", "surrogatepass"),
                           digest_size=8).digest()


class CollisionGuard:
    """What one worker's scripts have handed its host, by hash (thread-safe)."""

    def __init__(self, max_same_hash: int = MAX_SAME_HASH,
                 max_tracked: int = MAX_TRACKED_HASHES) -> None:
        self._max_same = max_same_hash
        self._max_tracked = max_tracked
        self._seen: dict[int, set[bytes]] = {}
        self._lock = threading.Lock()

    def admit(self, values: Iterable[object]) -> None:
        """Count ``values`` (one request's), or raise DataLimit, counting none of them,
        if one hash would then have more than the bound of distinct values."""
        pending: dict[int, set[bytes]] = {}
        for value in values:
            pending.setdefault(hash(value), set()).add(_fingerprint(value))
        if not pending:
            return
        with self._lock:
            for digest, prints in pending.items():
                known = self._seen.get(digest, set())
                if len(known | prints) > self._max_same:
                    raise DataLimit(
                        f"more than {self._max_same} distinct values with one hash would "
                        "have been handed to the host by scripts in this worker (they would "
                        "make the host's dicts slow); pass strings, or fewer such values")
            for digest, prints in pending.items():
                self._seen.setdefault(digest, set()).update(prints)
            if len(self._seen) > self._max_tracked:
                self._forget_the_fewest()

    def _forget_the_fewest(self) -> None:
        """Halve the table, forgetting the hashes seen for the fewest values, oldest first:
        a hash near the bound is the last to go, and pushing one out takes more values
        than the table holds."""
        ranked = sorted(self._seen, key=lambda digest: len(self._seen[digest]))
        for digest in ranked[:len(self._seen) - self._max_tracked // 2]:
            del self._seen[digest]
