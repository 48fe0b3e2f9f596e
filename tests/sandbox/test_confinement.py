"""The script child is confined by the kernel, and nothing outlives a script.

The child runs as an unprivileged user (when the worker is root) with no
capabilities, no_new_privs, no new processes and a seccomp filter; the fork
server kills whatever process a script left behind; the child holds nothing but
its channel (close-on-exec) and /dev/null. Checked on a real script child, and
each refused action attempted for real in a forked, locked-down test process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import platform
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sandbox.helpers import TOKEN_CANARY, make_app

from common_api.sandbox import ScriptRunner, ScriptSettings, child, process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux process confinement")

GATED = "result = app.state.gate.wait()"
IS_ROOT = os.geteuid() == 0
O_CLOEXEC = 0o2000000


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return {key: value.strip() for key, value in
                (line.split(":", 1) for line in handle.read().splitlines() if ":" in line)}


def _script_child(runner: ScriptRunner) -> int:
    server = runner._server
    assert server is not None
    pid = server.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        children = [int(p) for p in handle.read().split()]
    assert len(children) == 1, children
    return children[0]


@pytest.fixture(scope="module")
def gated() -> Iterator[tuple[ScriptRunner, Flask]]:
    runner = ScriptRunner(ScriptSettings(timeout=10))
    app = make_app()
    yield runner, app
    app.state.gate.release.set()  # type: ignore[attr-defined]
    runner.close()


def _while_gated(runner: ScriptRunner, app: Flask, look: Callable[[int], None]) -> None:
    """Run the gated script; call ``look(child pid)`` while it waits at the gate."""
    gate = app.state.gate  # type: ignore[attr-defined]
    gate.release.clear()
    results: list[object] = []

    def target() -> None:
        try:
            results.append(runner.run(GATED, app).result)
        except Exception as exc:  # recorded for the assertion
            results.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        assert gate.entered.acquire(timeout=10), "the script never reached the gate"
        look(_script_child(runner))
    finally:
        gate.release.set()
        thread.join(10)
    assert results == ["released"]


def test_script_child_has_no_privileges(gated: tuple[ScriptRunner, Flask]) -> None:
    seen: dict[str, str] = {}
    _while_gated(*gated, look=lambda pid: seen.update(_status(pid)))
    if IS_ROOT:
        uid, gid = _nobody()
        assert seen["Uid"].split() == [str(uid)] * 4
        assert seen["Gid"].split() == [str(gid)] * 4
        assert seen["Groups"] == ""
    assert "0" not in seen["Uid"].split()
    emptied = ("CapInh", "CapEff", "CapPrm", "CapAmb") + (("CapBnd",) if IS_ROOT else ())
    for capabilities in emptied:  # an ordinary user may not shrink its bounding set
        assert int(seen[capabilities], 16) == 0, (capabilities, seen[capabilities])
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"


def test_script_child_holds_only_its_channel_and_devnull(
        gated: tuple[ScriptRunner, Flask]) -> None:
    links: dict[int, str] = {}
    flags: dict[int, int] = {}

    def look(pid: int) -> None:
        for name in os.listdir(f"/proc/{pid}/fd"):
            links[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
            with open(f"/proc/{pid}/fdinfo/{name}", encoding="ascii") as handle:
                info = dict(line.split(":", 1) for line in handle.read().splitlines())
            flags[int(name)] = int(info["flags"].strip(), 8)

    _while_gated(*gated, look=look)
    sockets = [fd for fd, target in links.items() if target.startswith("socket:")]
    assert len(sockets) == 1, links
    assert {target for fd, target in links.items() if fd not in sockets} == {"/dev/null"}, links
    assert flags[sockets[0]] & O_CLOEXEC, "the channel would be inherited across exec"


# -- each refused action, attempted for real after the lock-down ------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
PR_SET_DUMPABLE = 4
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0


def _landlock_abi() -> int:
    if platform.machine() not in ("x86_64", "aarch64"):
        return 0
    syscall = _LIBC.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)  # landlock_create_ruleset(NULL, 0, VERSION)


LANDLOCK = _landlock_abi() > 0
TIOCSTI = 0x5412


def _libc_errno(result: int) -> int:
    return ctypes.get_errno() if result == -1 else 0


def _attempt(action: Callable[[], object]) -> int:
    """0 if ``action`` succeeded, else the errno it failed with."""
    try:
        action()
    except OSError as exc:
        return exc.errno or -1
    return 0


def _fork_and_wait() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _type_into_devnull() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, TIOCSTI, b"x")  # ENOTTY unless refused before the driver sees it
    finally:
        os.close(fd)


def _shared_memory_segment() -> int:
    """shmget(IPC_PRIVATE): a segment outlives its process; removed at once if made."""
    segment = _LIBC.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
    if segment == -1:
        return ctypes.get_errno()
    _LIBC.shmctl(segment, IPC_RMID, None)
    return 0


def _locked_down_probe(parent: int, bystander: int, mountpoint: str, scratch: str
                       ) -> dict[str, int]:
    """Runs in the forked test process after the lock-down: errno of each attempt."""
    outcome = {
        "kill parent 0": _attempt(lambda: os.kill(parent, 0)),
        "kill parent SIGCONT": _attempt(lambda: os.kill(parent, signal.SIGCONT)),
        "clock_settime": _attempt(lambda: time.clock_settime(
            time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME))),
        "fork": _attempt(_fork_and_wait),
        "execve": _attempt(lambda: os.execv("/nonexistent/common-api-probe", ["probe"])),
        "mount": _libc_errno(_LIBC.mount(b"none", mountpoint.encode(),
                                         b"common-api-no-such-fs", 0, None)),
        "setuid 0": _attempt(lambda: os.setuid(0)),
        "ptrace attach": _libc_errno(_LIBC.ptrace(PTRACE_ATTACH, bystander, None, None)),
        "socket": _attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
        "TIOCSTI": _attempt(_type_into_devnull),
        "chmod": _attempt(lambda: os.chmod(mountpoint, 0o777)),
        "System V shared memory": _shared_memory_segment(),
    }
    if IS_ROOT or LANDLOCK:  # else an ordinary user's child may (docs/sandbox.md)
        outcome["read parent environ"] = _attempt(
            lambda: open(f"/proc/{parent}/environ", "rb").close())
    if LANDLOCK:  # /tmp is writable by every user
        outcome["create a file"] = _attempt(lambda: _create_file(scratch))
    return outcome


def _still_works() -> dict[str, object]:
    """What a script child must still do after the lock-down."""
    data = bytearray(20 * 1024 * 1024)
    try:
        raise ValueError("raised")
    except ValueError as exc:
        message = str(exc)
    caught: list[int] = []
    signal.signal(signal.SIGUSR1, lambda number, frame: caught.append(number))
    signal.raise_signal(signal.SIGUSR1)  # a signal to itself is allowed
    os.kill(os.getpid(), 0)
    return {"allocated": len(data), "raised": message, "own signal": caught}


@pytest.fixture()
def bystander() -> Iterator[int]:
    """A process of the test's user that the locked-down child must not reach."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait(10)


def _forked(body: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Run ``body`` in a forked process that holds only its socket (and 0, 1, 2), as a
    script child does; return what it sent back on that socket."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (runs in the forked process)
        code = 1
        try:
            ours.close()
            keep = theirs.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            theirs.sendall(json.dumps(body()).encode())
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                theirs.sendall(json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    theirs.close()
    ours.settimeout(20)
    chunks = []
    try:
        while chunk := ours.recv(65536):
            chunks.append(chunk)
    finally:
        ours.close()
        _, status = os.waitpid(pid, 0)
    answer = json.loads(b"".join(chunks) or b"{}")
    assert os.waitstatus_to_exitcode(status) == 0, answer
    return dict(answer)


def _run_locked_down(probe: Callable[[], dict[str, object]],
                     user: list[int] | None = None) -> dict[str, object]:
    """Fork, lock down as a script child does (the fork server's config), run ``probe``."""
    config = {"timeout": 5, "memory_limit_bytes": 4 * 1024 * 1024 * 1024,
              "max_files": 16, "max_result_bytes": 1000,
              "user": user or list(_nobody())}

    def body() -> dict[str, object]:
        child.lock_down(config)
        return probe()

    return _forked(body)


def _create_file(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def test_locked_down_child_is_refused_each_privileged_action(bystander: int) -> None:
    parent = os.getpid()
    scratch = f"/tmp/common-api-confinement-{parent}"
    try:
        with tempfile.TemporaryDirectory() as mountpoint:
            outcome = _run_locked_down(
                lambda: _locked_down_probe(parent, bystander, mountpoint, scratch))
            assert not os.path.ismount(mountpoint)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    refused = {name: errno.errorcode.get(int(code), code) for name, code in outcome.items()}
    expected = {name: "EPERM" for name in outcome}
    expected.update({name: "EACCES" for name in ("read parent environ", "create a file")
                     if name in outcome})  # open() of another user's or a refused file
    assert refused == expected


@pytest.mark.skipif(not (IS_ROOT and LANDLOCK), reason="needs root (to become an ordinary "
                    "user) and a kernel with Landlock")
def test_child_of_an_ordinary_user_worker_cannot_reach_the_worker() -> None:
    """The worker is an ordinary user: its child keeps that uid, and still neither
    signals the worker nor reads its environment or memory."""

    def worker() -> dict[str, object]:
        uid, gid = _nobody()
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as any process of an ordinary user
        me = os.getpid()

        def probe() -> dict[str, object]:
            attempts = {
                "kill worker": _attempt(lambda: os.kill(me, signal.SIGCONT)),
                "read worker environ": _attempt(
                    lambda: open(f"/proc/{me}/environ", "rb").close()),
                "read worker memory": _attempt(lambda: open(f"/proc/{me}/mem", "rb").close()),
            }
            return {name: errno.errorcode.get(code, code) for name, code in attempts.items()}

        answer = _run_locked_down(probe)
        readable = _attempt(lambda: open(f"/proc/{me}/environ", "rb").close())
        return {**answer, "worker reads its own environ": readable}

    assert _forked(worker) == {
        "kill worker": "EPERM", "read worker environ": "EACCES",
        "read worker memory": "EACCES", "worker reads its own environ": 0,
    }


def test_locked_down_child_still_works() -> None:
    outcome = _run_locked_down(_still_works)
    assert outcome == {"allocated": 20 * 1024 * 1024, "raised": "raised",
                       "own signal": [int(signal.SIGUSR1)]}


# -- nothing outlives a script --------------------------------------------------------------

#: Appended to the fork server's bootstrap: the lock-down is disabled (an escape that
#: got that far), and before running a script the child forks a process that starts
#: its own session (before the script goes on) and sleeps; the script's result is that
#: process's pid.
ESCAPE = """
import os as _os, time as _time
from common_api.sandbox import child as _child
_run = _child.run
def _escaped_run(source, *args):
    ready, done = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        _os.setsid()
        _os.write(done, b"s")
        _time.sleep(60)
        _os._exit(0)
    _os.read(ready, 1)  # it has left the child's process group
    report = _run(source, *args)
    report["result"] = str(pid)
    return report
_child.lock_down = lambda *args, **kwargs: None
_child.run = _escaped_run
"""
_SERVER_CALL = "fork_server_main()\n"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_process_an_escaped_script_started_dies_with_the_script(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert process._BOOTSTRAP.endswith(_SERVER_CALL)
    monkeypatch.setattr(process, "_BOOTSTRAP",
                        process._BOOTSTRAP[:-len(_SERVER_CALL)] + ESCAPE + _SERVER_CALL)
    runner = ScriptRunner(ScriptSettings(timeout=5))
    orphan = 0
    try:
        orphan = int(runner.run("result = 1", make_app()).result)
        deadline = time.monotonic() + 5
        while _alive(orphan) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(orphan), f"process {orphan} outlived its script: {_status(orphan)}"
    finally:
        runner.close()
        if orphan and _alive(orphan):
            os.kill(orphan, signal.SIGKILL)


# -- the user a child becomes --------------------------------------------------------------


def test_script_user_setting_is_checked_at_start() -> None:
    from flask import Flask

    from common_api import CommonApi, config
    from common_api.errors import ConfigurationError

    assert config.resolve({}, environ={})[config.SCRIPT_USER] == "nobody"
    daemon = CommonApi(Flask("user_daemon"), script_user="daemon")
    assert daemon.settings.script_user == "daemon"
    daemon.close()
    for bad, reason in (("root", "is root"), ("0", "is root"), ("no-such-user-x", "no user"),
                        ("4294967295", "not a valid user id"), ("  ", "user name or uid")):
        with pytest.raises(ConfigurationError, match=f"{config.SCRIPT_USER}:? .*{reason}"):
            CommonApi(Flask("user_bad"), script_user=bad)


@pytest.mark.skipif(not IS_ROOT, reason="only a root worker switches user")
def test_configured_user_is_the_one_the_child_becomes() -> None:
    daemon = pwd.getpwnam("daemon")
    runner = ScriptRunner(ScriptSettings(timeout=10, user="daemon"))
    app = make_app()
    seen: dict[str, str] = {}
    try:
        _while_gated(runner, app, look=lambda pid: seen.update(_status(pid)))
    finally:
        runner.close()
    assert seen["Uid"].split() == [str(daemon.pw_uid)] * 4
    assert seen["Gid"].split() == [str(daemon.pw_gid)] * 4


@pytest.mark.skipif(not IS_ROOT, reason="only a root worker switches user")
def test_a_child_that_cannot_switch_user_refuses_to_run() -> None:
    with pytest.raises(AssertionError, match="still root"):
        _run_locked_down(lambda: {}, user=[0xFFFFFFFF, 0xFFFFFFFF])  # "leave unchanged"


def test_each_layer_the_machine_lacks_is_logged_once_at_fork_server_start(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "sparc64")  # in the worker only
    caplog.set_level(logging.WARNING, logger="common_api.sandbox")
    runner = ScriptRunner(ScriptSettings(timeout=5))
    try:
        assert runner.run("result = 1", make_app()).result == "1"
        assert runner.run("result = 2", make_app()).result == "2"
    finally:
        runner.close()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("common_api")] == [
        "no seccomp filter for script children on sparc64 (system call numbers known for "
        "aarch64, x86_64)",
        "no Landlock domain for script children on sparc64",
    ]


def test_the_filter_builds_for_every_listed_architecture() -> None:
    from common_api.sandbox import confine, syscalls

    for machine, (arch, numbers, other_abi) in syscalls.ARCHITECTURES.items():
        assert len(set(numbers.values())) == len(numbers), f"{machine}: a number twice"
        program = confine.SeccompProgram(arch, numbers, other_abi).for_pid(4242)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096
        listed = [name for name in confine.DENIED if name in numbers]
        assert len(program) // 8 > len(listed) + len(confine.SELF_ONLY), machine


@pytest.mark.skipif(not IS_ROOT, reason="only a root worker switches user")
def test_a_script_that_cannot_be_confined_does_not_run_and_the_view_answers_503() -> None:
    import io

    from common_api import bp
    from common_api.extension import get_state
    from common_api.sandbox import ScriptUnavailable

    app = make_app()
    app.config["COMMON_API_SCRIPT_ENABLED"] = True
    app.register_blueprint(bp)
    runner = ScriptRunner(ScriptSettings(timeout=5))
    runner._config["user"] = [0xFFFFFFFF, 0xFFFFFFFF]  # "leave unchanged": stays root
    get_state(app)._runner = runner
    try:
        with pytest.raises(ScriptUnavailable, match="still root"):
            runner.run("app.state.counter = 99", app)
        response = app.test_client().post(
            "/run_script", data={"script": (io.BytesIO(b"app.state.counter = 7"), "s.py")},
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {TOKEN_CANARY}"})
    finally:
        runner.close()
    assert response.status_code == 503
    assert response.content_type.startswith("text/plain")
    assert "cannot confine" in response.get_data(as_text=True)
    assert app.state.counter == 0  # type: ignore[attr-defined]
