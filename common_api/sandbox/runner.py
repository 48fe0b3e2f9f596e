"""ScriptRunner: runs each script in a fresh, locked-down child process.

Flow of one :meth:`ScriptRunner.run`:

1. take a concurrency slot (:class:`ScriptBusy` when none is free);
2. have the worker's fork server (started once, lazily) fork a fresh child;
3. send the source; the child compiles it under the AST policy and runs it;
4. answer the child's host requests (:class:`~.proxy.HostBridge`) until it reports,
   under a wall-clock deadline, a request budget and a byte budget;
5. kill and reap the child whatever happened; log a record of the script.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import weakref
from typing import Any

from . import protocol
from .api import ScriptBusy, ScriptError, ScriptOutcome, ScriptSettings, ScriptUnavailable
from .collisions import CollisionGuard
from .confine import resolve_user
from .policy import (
    MAX_CHANNEL_BYTES,
    MAX_HOST_CALLS,
    MAX_MESSAGE_BYTES,
    MAX_REPLY_BYTES,
    MAX_SCRIPT_ITEMS,
)
from .process import (
    ChildGone,
    ChildProcess,
    Deadline,
    ForkServer,
    FrameTooLarge,
    ServerError,
    death_reason,
)
from .proxy import HostBridge
from .render import log_text

# the runner's own record of each script; the HTTP view writes the one audit line
# (common_api.audit) that names the request's client and token
script_log = logging.getLogger("common_api.sandbox.scripts")
log = logging.getLogger(__name__)

TRUNCATION_MARKER = "\n[truncated: the result and output exceed {limit} bytes]"

_runners: weakref.WeakSet[ScriptRunner] = weakref.WeakSet()


def _forget_inherited_children() -> None:
    for runner in list(_runners):
        runner._after_fork()


os.register_at_fork(after_in_child=_forget_inherited_children)


class ScriptRunner:
    """Runs scripts for one app; safe to call from many threads."""

    def __init__(self, settings: ScriptSettings) -> None:
        self.settings = settings
        # entries that grant nothing are named once at registration (extension.py)
        self._config: dict[str, Any] = {
            "allowed_imports": sorted(settings.allowed_imports),
            "timeout": settings.timeout,
            "max_result_bytes": settings.max_result_bytes,
            "memory_limit_bytes": settings.memory_limit_bytes,
            "user": list(resolve_user(settings.user)),
        }
        self._slots = threading.BoundedSemaphore(max(1, settings.max_concurrent))
        # the values of chosen hashes this worker's scripts have handed its host, all runs
        self._collisions = CollisionGuard()
        self._server_lock = threading.Lock()
        self._server: ForkServer | None = None
        self._closed = False
        _runners.add(self)

    # -- public API ----------------------------------------------------------------------
    def run(self, source: str, app: object, *, client: str = "",
            writes: list[dict[str, str]] | None = None) -> ScriptOutcome:
        """Run ``source`` against ``app``; ``writes`` receives the host attribute writes
        the script made (path, old and new value type), whether it succeeded or not."""
        started = time.monotonic()
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        size = len(source.encode("utf-8", "surrogatepass"))
        if not self._slots.acquire(blocking=False):
            limit = self.settings.max_concurrent
            self._log_script(digest, size, "busy", started, client)
            raise ScriptBusy(
                f"Too many scripts running (at most {limit} at once per worker); "
                "try again later"
            )
        try:
            bridge = HostBridge(app, self.settings.host_packages, self._collisions)
            try:
                outcome = self._run(source, bridge)
            finally:
                if writes is not None:
                    writes.extend(bridge.write_records())
        except ScriptError as exc:
            self._log_script(digest, size, f"error: {exc}", started, client, bridge)
            raise
        finally:
            self._slots.release()
        self._log_script(digest, size, "ok", started, client, bridge)
        return outcome

    def close(self) -> None:
        with self._server_lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.close()

    # -- internals -----------------------------------------------------------------------
    def _run(self, source: str, bridge: HostBridge) -> ScriptOutcome:
        child = self._spawn()
        timeout = self.settings.timeout
        try:
            deadline = time.monotonic() + timeout
            child.send({"op": "run", "source": source}, deadline)
            return self._serve(child, bridge, deadline)
        except (Deadline, protocol.Expired):
            raise ScriptError(f"Script timed out after {timeout:g} seconds") from None
        except ChildGone:
            pass  # it died without reporting: its exit status says why
        except FrameTooLarge:
            raise ScriptError("Script exceeded the message size limit") from None
        except ValueError:
            raise ScriptError("Script process sent a malformed message") from None
        finally:
            with self._server_lock:
                returncode = child.finish()
        raise ScriptError(death_reason(returncode, timeout))

    def _spawn(self) -> ChildProcess:
        with self._server_lock:
            if self._closed:
                raise ScriptError("Script runner is closed")
            for _attempt in range(2):
                if self._server is None or self._server.broken:
                    if self._server is not None:
                        self._server.close()
                    self._server = ForkServer(self._config)
                try:
                    return self._server.spawn()
                except (ServerError, Deadline) as exc:
                    log.warning("script fork server failed: %s", exc)
                    self._server.close()
                    self._server = None
        raise ScriptUnavailable("Script process could not be started")

    def _serve(self, child: ChildProcess, bridge: HostBridge, deadline: float
               ) -> ScriptOutcome:
        while True:
            message = child.recv(deadline, MAX_MESSAGE_BYTES)
            op = message.get("op")
            if op == "done":
                limit = self.settings.max_result_bytes
                result = child.recv_raw(deadline, limit)
                output = child.recv_raw(deadline, limit)
                return self._outcome(message, result, output)
            if op == "fail":
                lineno = message.get("lineno")
                if message.get("unavailable") is True:
                    raise ScriptUnavailable(str(message.get("reason", "Script sandbox error")))
                raise ScriptError(str(message.get("reason", "Script failed"))[:1000],
                                  lineno if type(lineno) is int else None)
            if bridge.calls >= MAX_HOST_CALLS:
                raise ScriptError(
                    f"Script exceeded the host access limit ({MAX_HOST_CALLS} operations)"
                )
            if child.bytes_moved > MAX_CHANNEL_BYTES:
                raise ScriptError(
                    f"Script exceeded the host data limit ({MAX_CHANNEL_BYTES} bytes)"
                )
            if bridge.items_received > MAX_SCRIPT_ITEMS:
                raise ScriptError(
                    f"Script exceeded the host data limit ({MAX_SCRIPT_ITEMS} items handed "
                    "to the host)"
                )
            frame = protocol.dump_frame(bridge.handle(message, deadline))
            if len(frame) > 4 * MAX_REPLY_BYTES:
                frame = protocol.dump_frame(
                    {"err": ["ValueError", "value is too large to pass to the script"]}
                )
            child.send_frame(frame, deadline)

    def _outcome(self, message: dict[str, Any], raw_result: bytes, raw_output: bytes
                 ) -> ScriptOutcome:
        # Raw UTF-8, never parsed as JSON; whatever a lying child sends is made text.
        result = raw_result.decode("utf-8", "backslashreplace")
        output = raw_output.decode("utf-8", "backslashreplace")
        limit = self.settings.max_result_bytes
        truncated = bool(message.get("truncated"))
        if len(raw_result) + len(raw_output) > limit:  # a lying child
            result, output, truncated = result[:limit], "", True
        if truncated:
            marker = TRUNCATION_MARKER.format(limit=limit)
            if output:
                output += marker
            else:
                result += marker
        return ScriptOutcome(result=result, output=output, truncated=truncated)

    def _after_fork(self) -> None:
        # The parent's fork server is not ours to use.
        self._server_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, self.settings.max_concurrent))
        if self._server is not None:
            self._server.close()
            self._server = None

    def _log_script(self, digest: str, size: int, outcome: str, started: float,
                    client: str, bridge: HostBridge | None = None) -> None:
        """The runner's record of a script; every text a script chose is escaped."""
        duration = time.monotonic() - started
        writes = bridge.writes if bridge is not None else []
        changed = ",".join(f"{w['path']}:{w['old']}->{w['new']}" for w in writes)
        if bridge is not None and bridge.writes_omitted:
            changed += f" and {bridge.writes_omitted} more"
        script_log.info(
            "run_script sha256=%s size=%d duration=%.3fs client=%s writes=%s outcome=%s",
            digest, size, duration, log_text(client) if client else "-",
            log_text(changed) if changed else "-", log_text(outcome),
            extra={"script_sha256": digest, "script_size": size,
                   "script_outcome": outcome, "script_duration": duration,
                   "script_client": client,
                   "script_writes": bridge.write_records() if bridge is not None else []},
        )

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()
