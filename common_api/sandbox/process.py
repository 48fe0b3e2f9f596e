"""Worker side of the script processes: a fork server and one child per script.

Each worker process starts (lazily, once) a *fork server*: a fresh interpreter
spawned with :mod:`subprocess` (``sys.executable -I``, minimal environment, ``/``
as working directory, its own session) that imports the sandbox and the allowed
modules and then only ever forks. It never runs script code and holds no secret:
the worker's environment and the app stay in the worker.

For each script the worker creates a socket pair and passes one end to the fork
server, which forks a *script child* from its pristine state. The child starts a
new session, locks itself down (:func:`.child.lock_down`) and talks to the worker
directly over its socket. Nothing survives from one script to the next: each
script gets its own copy-on-write copy of the fork server, discarded afterwards.
The worker is threaded, so it never forks itself.

The fork server does not reap a script child until the worker asks for its exit
status, so the worker can always kill a child's process group by pid without a
pid-reuse race. Reaping also kills whatever process the child left behind, in its
own session or not: the fork server is the subreaper of its children.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import protocol
from .confine import missing_layers
from .policy import CHILD_MAX_FILES, SPAWN_TIMEOUT

_PACKAGE_DIR = Path(__file__).resolve().parent
_BOOTSTRAP = """\
import sys, types
sys.path[:0] = {path!r}
for name, where in (("common_api", {root!r}), ("common_api.sandbox", {pkg!r})):
    module = types.ModuleType(name)
    module.__path__ = [where]
    sys.modules[name] = module
from common_api.sandbox.child import fork_server_main
fork_server_main()
"""
_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
_REQUEST = struct.Struct(">ci")
_REPLY = struct.Struct(">i")
#: Exit status the fork server reports when it cannot tell.
UNKNOWN_STATUS = -(1 << 30)
log = logging.getLogger(__name__)


class ChildGone(Exception):
    """The child closed its channel; it died or is about to."""


class Deadline(Exception):
    """The wall-clock deadline passed while waiting for the child."""


class FrameTooLarge(Exception):
    """The child announced a message larger than allowed."""


class ServerError(Exception):
    """The fork server failed or went away."""


def _wait_fd(fd: int, event: int, deadline: float) -> None:
    poller = select.poll()
    poller.register(fd, event)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Deadline()
        if poller.poll(remaining * 1000.0):
            return


class ForkServer:
    """The per-worker fork server. Callers serialize requests (one at a time)."""

    def __init__(self, config: dict[str, Any]) -> None:
        config = dict(config, max_files=CHILD_MAX_FILES)
        for missing in missing_layers():
            log.warning("%s", missing)
        search_path = [p for p in sys.path if p and os.path.isabs(p)]
        code = _BOOTSTRAP.format(
            path=search_path, root=str(_PACKAGE_DIR.parent), pkg=str(_PACKAGE_DIR)
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.owner_pid = os.getpid()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code, json.dumps(config)],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=_ENV,
                close_fds=True,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.ready = False
        self.broken = False

    def wait_ready(self) -> None:
        if not self.ready:
            _wait_fd(self.sock.fileno(), select.POLLIN, time.monotonic() + SPAWN_TIMEOUT)
            if self.sock.recv(1) != b"Z":
                raise ServerError("fork server failed to start")
            self.ready = True

    def _request(self, command: bytes, value: int, fd: int | None = None) -> int:
        if self.broken:
            raise ServerError("fork server is gone")
        try:
            payload = _REQUEST.pack(command, value)
            if fd is None:
                self.sock.sendall(payload)
            else:
                socket.send_fds(self.sock, [payload], [fd])
            reply = b""
            deadline = time.monotonic() + SPAWN_TIMEOUT
            while len(reply) < _REPLY.size:
                _wait_fd(self.sock.fileno(), select.POLLIN, deadline)
                chunk = self.sock.recv(_REPLY.size - len(reply))
                if not chunk:
                    raise ServerError("fork server closed its socket")
                reply += chunk
        except (OSError, Deadline) as exc:
            self.broken = True
            raise ServerError(str(exc)) from None
        (number,) = _REPLY.unpack(reply)
        return int(number)

    def spawn(self) -> ChildProcess:
        """Fork a fresh script child; its channel is the returned object."""
        self.wait_ready()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = self._request(b"S", 0, theirs.fileno())
        except ServerError:
            ours.close()
            raise
        finally:
            theirs.close()
        if pid <= 0:
            ours.close()
            raise ServerError("fork failed")
        return ChildProcess(self, pid, ours)

    def reap(self, pid: int) -> int | None:
        """Wait for child ``pid`` (killed or exited) and return its return code."""
        try:
            code = self._request(b"R", pid)
        except ServerError:
            return None
        return None if code == UNKNOWN_STATUS else code

    def close(self) -> None:
        if os.getpid() != self.owner_pid:
            self.sock.close()
            return
        self.broken = True
        self.sock.close()  # the server exits on end of file
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2)


class ChildProcess:
    """One script child, seen from the worker: framed I/O with deadlines."""

    def __init__(self, server: ForkServer, pid: int, sock: socket.socket) -> None:
        self.server = server
        self.pid = pid
        self.sock = sock
        self.fd = sock.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.bytes_moved = 0
        self.killed = False

    def send_frame(self, frame: bytes, deadline: float) -> None:
        data = memoryview(frame)
        self.bytes_moved += len(data)
        while data:
            _wait_fd(self.fd, select.POLLOUT, deadline)
            try:
                written = os.write(self.fd, data)
            except BlockingIOError:
                continue
            except OSError:
                raise ChildGone() from None
            data = data[written:]

    def send(self, message: dict[str, Any], deadline: float) -> None:
        self.send_frame(protocol.dump_frame(message), deadline)

    def recv(self, deadline: float, max_bytes: int) -> dict[str, Any]:
        (size,) = protocol.HEADER.unpack(self._read_exact(protocol.HEADER.size, deadline))
        if size > max_bytes:
            raise FrameTooLarge(size)
        body = self._read_exact(size, deadline)
        self.bytes_moved += size + protocol.HEADER.size
        return protocol.load_body(body)

    def recv_raw(self, deadline: float, max_bytes: int) -> bytes:
        """One raw frame (the final result or output), at most ``max_bytes``."""
        (size,) = protocol.HEADER.unpack(self._read_exact(protocol.HEADER.size, deadline))
        if size > max_bytes:
            raise FrameTooLarge(size)
        self.bytes_moved += size + protocol.HEADER.size
        return self._read_exact(size, deadline)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            _wait_fd(self.fd, select.POLLIN, deadline)
            try:
                chunk = os.read(self.fd, max(size - len(self.buffer), 65536))
            except BlockingIOError:
                continue
            except OSError:
                raise ChildGone() from None
            if not chunk:
                raise ChildGone()
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def finish(self) -> int | None:
        """Kill the child's process group, reap it; return its return code."""
        self.sock.close()
        if os.getpid() != self.server.owner_pid:
            return None
        # Not reaped yet (the server waits for our request), so no pid reuse. The
        # child itself too, in case it had not reached setsid() yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)
        return self.server.reap(self.pid)


def death_reason(returncode: int | None, timeout: float) -> str:
    """The ScriptError reason for a child that died without reporting."""
    if returncode is None:
        return "Script process stopped responding"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return "Script exceeded the CPU limit"
        if sig == signal.SIGALRM:
            return f"Script timed out after {timeout:g} seconds"
        if sig == signal.SIGKILL:
            return "Script exceeded the CPU or memory limit"
        if sig == signal.SIGXFSZ:
            return "Script exceeded the file size limit"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"Script process crashed ({name})"
    return f"Script process exited unexpectedly (code {returncode})"
