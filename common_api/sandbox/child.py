"""The fork server's main program and the script child's (see :mod:`.process`).

The fork server is started as ``python -I -c <bootstrap>`` with a minimal
environment; it imports what scripts need and then forks one child per script.
A script child keeps only its channel and /dev/null open, starts a new session,
locks itself down (resource limits, then :mod:`.confine`: an unprivileged user,
no capabilities, no new processes, no_new_privs, a seccomp filter), reads exactly
one script, compiles it under the AST policy, runs it, reports and exits. Its
only way to the live app is its socket to the worker, answered by :mod:`.proxy`.
The fork server is the subreaper of its children: whatever process a script
child might start is killed when the worker reaps that child.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import os
import resource
import signal
import socket
import sys
import time
from typing import Any

from . import protocol, remote
from .api import DEFAULT_RESULT
from .compiler import SCRIPT_FILENAME, CompileFailed, compile_script
from .confine import Confinement, ConfinementError, become_subreaper
from .guards import ImportBlocked, OutputCapture, script_builtins, vetted_classes
from .imports import ImportGrant, grant
from .policy import LAZY_IMPORTS
from .process import _REPLY, _REQUEST, UNKNOWN_STATUS

MEMORY_REASON = "Script exceeded the memory limit"
#: How long the fork server keeps killing the orphans of a finished script.
_SWEEP_SECONDS = 5.0


class Channel:
    """Blocking framed I/O on two file descriptors (the child trusts the worker)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: dict[str, Any]) -> None:
        self.send_frame(protocol.dump_frame(message))

    def send_frame(self, frame: bytes) -> None:
        data = memoryview(frame)
        while data:
            written = os.write(self.write_fd, data)
            data = data[written:]

    def _read_exact(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size:
            chunk = os.read(self.read_fd, min(size, 1 << 20))
            if not chunk:
                os._exit(3)  # the worker went away
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> dict[str, Any]:
        (size,) = protocol.HEADER.unpack(self._read_exact(protocol.HEADER.size))
        return protocol.load_body(self._read_exact(size))

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.recv()


def lock_down(config: dict[str, Any], confinement: Confinement | None = None) -> None:
    """Resource limits, then the kernel-level confinement (:mod:`.confine`): an
    unprivileged user, no capabilities, no new processes, no_new_privs, seccomp.
    Called before any script byte is read; raises ConfinementError."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + float(config["timeout"])) + 2
    limits = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, int(config["memory_limit_bytes"]),
         int(config["memory_limit_bytes"])),
        (resource.RLIMIT_FSIZE, 0, 0),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, int(config["max_files"]), int(config["max_files"])),
    ]
    for kind, soft, hard in limits:
        resource.setrlimit(kind, (soft, hard))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
    if confinement is None:
        confinement = Confinement(_script_user(config))
    confinement.apply()


def _script_user(config: dict[str, Any]) -> tuple[int, int] | None:
    user = config.get("user")
    return (int(user[0]), int(user[1])) if user else None


def _lineno(exc: BaseException) -> int | None:
    lineno = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return MEMORY_REASON
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable message>"
    if isinstance(exc, ImportBlocked):
        return text[:500]
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text else name


def _clip(text: str, limit: int) -> tuple[str, bool]:
    cut = len(text) > limit  # every character is at least one byte: clip it first
    text = protocol.escape(text[:limit] if cut else text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, cut
    return data[:limit].decode("utf-8", "ignore"), True


def run(source: str, config: dict[str, Any], builtins_table: dict[str, object],
        output: OutputCapture) -> dict[str, Any]:
    """Compile and run ``source``; return the report sent to the worker."""
    try:
        code = compile_script(source)
    except CompileFailed as exc:
        return {"op": "fail", "reason": exc.reason, "lineno": exc.lineno}
    except MemoryError:
        return {"op": "fail", "reason": MEMORY_REASON, "lineno": None}
    namespace: dict[str, Any] = {
        "__builtins__": builtins_table,
        "__name__": "__script__",
        "app": remote.remote_for(0),
    }
    limit = int(config["max_result_bytes"])
    try:
        exec(code, namespace)
        value = namespace.get("result", DEFAULT_RESULT)
        text = value if type(value) is str else str(value)
        result, cut = _clip(text, limit)
    except BaseException as exc:  # the script's failure, whatever it is
        return {"op": "fail", "reason": _describe(exc), "lineno": _lineno(exc)}
    printed, cut_output = _clip(output.getvalue(), max(limit - len(result.encode()), 0))
    truncated = cut or cut_output or output.truncated
    return {"op": "done", "result": result, "output": printed, "truncated": truncated}


def fork_server_main() -> None:
    """Prepare once, then fork one script child per request of the worker."""
    config: dict[str, Any] = json.loads(sys.argv[1])
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    children = ScriptChildren()
    granted = grant(config["allowed_imports"])
    vetted_classes(granted)  # imports the allowed modules now, once
    for name in granted.modules:  # and what they import lazily, while files can be opened
        for lazy in LAZY_IMPORTS.get(name, ()):
            with contextlib.suppress(ImportError):
                importlib.import_module(lazy)
    # Everything a child needs is loaded: it works even when its user cannot read
    # the interpreter's files.
    confinement = Confinement(_script_user(config))
    compile_script("total = 0\nfor i in range(3):\n    total += i\n")  # warm the compiler
    control.sendall(b"Z")
    while True:
        data, fds = _receive(control)
        if len(data) < _REQUEST.size:
            children.close()
            os._exit(0)  # the worker went away
        command, value = _REQUEST.unpack(data)
        if command == b"S" and len(fds) == 1:
            pid = os.fork()
            if pid == 0:
                control.close()
                _script_child(fds[0], config, granted, confinement)
            children.started(pid)
            os.close(fds[0])
            control.sendall(_REPLY.pack(pid))
        elif command == b"R":
            control.sendall(_REPLY.pack(children.reap(value)))
        else:
            for fd in fds:
                os.close(fd)
            control.sendall(_REPLY.pack(-1))


def _receive(control: socket.socket) -> tuple[bytes, list[int]]:
    """One request of the worker and the descriptor it carries, made close-on-exec
    as it arrives (``MSG_CMSG_CLOEXEC``): nothing a child might execute inherits it."""
    fds = array.array("i")
    data, ancillary, _flags, _addr = control.recvmsg(
        _REQUEST.size, socket.CMSG_SPACE(fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    while data and len(data) < _REQUEST.size:
        more = control.recv(_REQUEST.size - len(data))
        if not more:
            break
        data += more
    return data, list(fds)


class ScriptChildren:
    """The fork server's script children and, as their subreaper, whatever processes
    they started: a process that outlives its parent becomes the fork server's
    child, not init's, and is killed when a script ends."""

    def __init__(self) -> None:
        self.live: set[int] = set()
        become_subreaper()

    def started(self, pid: int) -> None:
        self.live.add(pid)

    def reap(self, pid: int) -> int:
        """Wait for script child ``pid`` (the worker killed it); kill what it left."""
        if pid not in self.live:
            return UNKNOWN_STATUS
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = UNKNOWN_STATUS
        self.live.discard(pid)
        self.sweep()
        return code

    def sweep(self) -> None:
        """Kill and reap every child that is not a running script child. Only an escape
        starts a process (a child may not), so none of them may live on, even one of
        a script still running."""
        deadline = time.monotonic() + _SWEEP_SECONDS
        while time.monotonic() < deadline:
            orphans = [pid for pid in _children() if pid not in self.live]
            if not orphans:
                return
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in orphans:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def close(self) -> None:
        """Kill every script child and everything they started (the worker is gone)."""
        for pid in self.live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.live:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.live.clear()
        self.sweep()


def _children() -> list[int]:
    """Pids of the calling process's children (it has one thread)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN: scan every process
        pass
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1:2] == [str(pid)]:
                found.append(int(name))
    return found


def _report(channel: Channel, report: dict[str, Any]) -> None:
    """Send the final report; a result and its output follow as raw UTF-8 frames."""
    if report.get("op") != "done":
        report["reason"] = protocol.escape(str(report.get("reason", "")))
        channel.send(report)
        return
    result, output = str(report.pop("result")), str(report.pop("output"))
    channel.send(report)
    channel.send_frame(protocol.raw_frame(result.encode("utf-8")))
    channel.send_frame(protocol.raw_frame(output.encode("utf-8")))


def _script_child(fd: int, config: dict[str, Any], granted: ImportGrant,
                  confinement: Confinement) -> None:
    """Run in a freshly forked child: lock down, run one script, report, exit."""
    try:
        _close_other_fds(fd)
        os.setsid()
        channel = Channel(fd, fd)
        output = OutputCapture(int(config["max_result_bytes"]))
        builtins_table = script_builtins(granted, output)
        remote.install(channel.request)
        try:
            lock_down(config, confinement)
        except ConfinementError as exc:  # never run a script unconfined
            reason = f"Script sandbox error: cannot confine the script process ({exc})"
            channel.send({"op": "fail", "reason": reason, "lineno": None, "unavailable": True})
            os._exit(5)
        message = channel.recv()
        if message.get("op") != "run":
            os._exit(4)
        signal.setitimer(signal.ITIMER_REAL, float(config["timeout"]) + 2.0)  # SIGALRM kills
        sys.stdout = output  # pprint and friends print into the captured output
        try:
            report = run(str(message.get("source", "")), config, builtins_table, output)
        except MemoryError:
            report = {"op": "fail", "reason": MEMORY_REASON, "lineno": None}
        except Exception as exc:  # a bug of the sandbox itself, not of the script
            reason = f"Script sandbox error: {type(exc).__name__}"
            report = {"op": "fail", "reason": reason, "lineno": None}
        sys.stdout = sys.__stdout__
        try:
            _report(channel, report)
        except MemoryError:
            channel.send({"op": "fail", "reason": MEMORY_REASON, "lineno": None})
    finally:
        os._exit(0)


def _close_other_fds(keep: int) -> None:
    """Only the channel and /dev/null (0, 1, 2) stay open in a script child."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc: close the whole range
        os.closerange(3, keep)
        os.closerange(keep + 1, max(os.sysconf("SC_OPEN_MAX"), keep + 1))
        return
    for name in names:
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own, closed already
                os.close(fd)
