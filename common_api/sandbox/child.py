"""The fork server's main program and the script child's (see :mod:`.process`).

The fork server is started as ``python -I -c <bootstrap>`` with a minimal
environment; it imports what scripts need and then forks one child per script.
A script child starts a new session, locks itself down (resource limits, an
unprivileged user, no new processes), reads exactly one script, compiles it
under the AST policy, runs it, reports and exits. Its only way to the live app
is its socket to the worker, answered by :mod:`.proxy`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import signal
import socket
import stat
import sys
from typing import Any

from . import protocol, remote
from .api import DEFAULT_RESULT
from .compiler import SCRIPT_FILENAME, CompileFailed, compile_script
from .guards import ImportBlocked, OutputCapture, script_builtins, vetted_classes
from .imports import ImportGrant, grant
from .policy import LAZY_IMPORTS
from .process import _REPLY, _REQUEST, UNKNOWN_STATUS

MEMORY_REASON = "Script exceeded the memory limit"
_NOBODY = 65534


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


def lock_down(config: dict[str, Any]) -> None:
    """Resource limits, then drop root. Called before any script byte is read."""
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
    if os.geteuid() == 0 and config.get("drop_privileges"):
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _readable_by_others(paths: list[str]) -> bool:
    """Whether an unprivileged user could still import from ``paths``."""
    for entry in paths:
        path = os.path.abspath(entry)
        if not os.path.exists(path):
            continue
        while True:
            mode = os.stat(path).st_mode
            wanted = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
            if not mode & wanted:
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


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
    granted = grant(config["allowed_imports"])
    vetted_classes(granted)  # imports the allowed modules now, once
    for name in granted.modules:  # and what they import lazily, while files can be opened
        for lazy in LAZY_IMPORTS.get(name, ()):
            with contextlib.suppress(ImportError):
                importlib.import_module(lazy)
    # Drop root in the script children only if an unprivileged user can read the
    # interpreter's files (a late import must not fail for lack of permission).
    config["drop_privileges"] = _readable_by_others(sys.path)
    compile_script("total = 0\nfor i in range(3):\n    total += i\n")  # warm the compiler
    control.sendall(b"Z")
    while True:
        data, fds, _flags, _addr = socket.recv_fds(control, _REQUEST.size, 1)
        while data and len(data) < _REQUEST.size:
            more = control.recv(_REQUEST.size - len(data))
            if not more:
                break
            data += more
        if len(data) < _REQUEST.size:
            os._exit(0)  # the worker went away
        command, value = _REQUEST.unpack(data)
        if command == b"S" and len(fds) == 1:
            pid = os.fork()
            if pid == 0:
                control.close()
                _script_child(fds[0], config, granted)
            os.close(fds[0])
            control.sendall(_REPLY.pack(pid))
        elif command == b"R":
            control.sendall(_REPLY.pack(_reap(value)))
        else:
            for fd in fds:
                os.close(fd)
            control.sendall(_REPLY.pack(-1))


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


def _reap(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return UNKNOWN_STATUS
    return os.waitstatus_to_exitcode(status)


def _script_child(fd: int, config: dict[str, Any], granted: ImportGrant) -> None:
    """Run in a freshly forked child: lock down, run one script, report, exit."""
    try:
        os.setsid()
        channel = Channel(fd, fd)
        output = OutputCapture(int(config["max_result_bytes"]))
        builtins_table = script_builtins(granted, output)
        remote.install(channel.request)
        lock_down(config)
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
