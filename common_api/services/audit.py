"""One structured line per state change, on the ``common_api.audit`` logger.

Each line is a JSON object: ``event`` (what), ``client`` and ``token`` (who: the peer
address and the fingerprint of the bearer token presented, never the token itself),
``status`` and ``outcome`` (how it ended), plus the event's own details.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

AUDIT_LOGGER = "common_api.audit"


class AuditLog:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)

    def record(self, event: str, *, client: str | None, token: str | None, status: int,
               **details: Any) -> dict[str, Any]:
        outcome = "ok" if status < 400 else "denied" if status in (401, 403) else "failed"
        entry = {"ts": round(time.time(), 3), "event": event, "client": client,
                 "token": token, "status": status, "outcome": outcome, **details}
        self._logger.info(json.dumps(entry, sort_keys=True, default=str))
        return entry
