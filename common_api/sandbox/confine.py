"""The kernel-level confinement of a script child: who it is and what it may ask.

Applied by the script child after its resource limits and before it reads a byte
of the script (:func:`.child.lock_down`), in this order:

1. when the worker is root, the child switches to an unprivileged user (``nobody``
   or ``COMMON_API_SCRIPT_USER``) with no supplementary groups, after emptying the
   capability bounding set; the switch clears its effective and permitted
   capabilities;
2. every capability set left is emptied (inheritable, ambient), and it may start no
   process or thread (``RLIMIT_NPROC=0``);
3. it dies with its fork server (``PR_SET_PDEATHSIG``);
4. ``no_new_privs``: nothing it could execute may grant privileges;
5. a Landlock domain, where the kernel has one (:mod:`.landlock`): no file created,
   written or removed, and no ptrace-type access to any process outside it (the
   worker's ``/proc/<pid>/mem`` and ``environ`` even for a worker that is not root);
6. a seccomp filter (classic BPF, installed with ``prctl``) answers ``EPERM`` to the
   system calls a script never needs and an escape would: other processes (ptrace,
   signals to anyone but itself, priorities), the clock, mounts and namespaces,
   identities, new processes and programs, kernel modules, keys, BPF, io_uring,
   file modes, owners, times and attributes, System V IPC and message queues (they
   would outlive the script), new sockets. Only on architectures
   whose system call numbers are listed here.

Where the kernel lacks Landlock or seccomp, or the architecture is not listed, the
worker logs one line per missing layer when it starts the fork server
(:func:`missing_layers`).

Everything here only ever lowers what the process may do, so it works with an
interpreter the unprivileged user cannot read: the fork server imported what the
child needs before forking.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import pwd
import resource
import struct

from .landlock import LandlockRuleset
from .syscalls import ARCHITECTURES

#: The user a child switches to when none is configured (and its ids when the
#: system has no such entry).
DEFAULT_USER = "nobody"
_NOBODY_IDS = (65534, 65534)
_NO_ID = 0xFFFFFFFF  # (uid_t) -1: "leave unchanged" to setresuid

# prctl options and values (linux/prctl.h, linux/seccomp.h, linux/capability.h)
PR_SET_PDEATHSIG = 1
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_CAPABILITY_VERSION_3 = 0x20080522
_SIGKILL = 9

# classic BPF and seccomp return values
_LD_ABS_W = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | errno.EPERM
_RET_KILL_PROCESS = 0x80000000
_NR_OFFSET = 0
_ARCH_OFFSET = 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of system call argument ``index`` (little endian)."""
    return 16 + 8 * index


#: System calls refused to a script child, whatever their arguments.
DENIED = (
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_send_signal",
    "pidfd_getfd", "kcmp", "get_robust_list", "process_madvise", "process_mrelease",
    "setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
    "sched_setattr", "ioprio_set", "migrate_pages", "move_pages",
    # the clock
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex",
    # mounts, roots and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "name_to_handle_at", "open_by_handle_at", "fanotify_init", "quotactl",
    # identities and capabilities
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capset",
    # new processes and programs (the child is single-threaded and needs neither)
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    # the kernel and the machine
    "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl",
    "add_key", "request_key", "reboot", "kexec_load", "kexec_file_load", "swapon",
    "swapoff", "acct", "sethostname", "setdomainname", "syslog", "vhangup", "iopl",
    "ioperm", "modify_ldt", "uselib", "lookup_dcookie", "nfsservctl", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # file owners, modes, times and attributes (which Landlock does not cover)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr",
    "fremovexattr", "removexattrat", "utime", "utimes", "utimensat", "futimesat",
    # System V IPC and POSIX message queues: objects that outlive the process
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr",
    # new sockets (the child's one channel to the worker is already connected)
    "socket",
)
#: Signal system calls allowed only when their first argument is the child itself.
SELF_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
#: ``prlimit64`` is allowed on the child itself (pid 0 or its own pid) only.
SELF_OR_ZERO = ("prlimit64",)
#: ``ioctl`` requests refused (typing into a terminal, console control).
TIOCSTI = 0x5412
TIOCLINUX = 0x541C


class _SockFprog(ctypes.Structure):
    """struct sock_fprog: the length and address of a classic BPF program."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class ConfinementError(Exception):
    """The child could not be confined; it must not run the script."""


def resolve_user(spec: str) -> tuple[int, int]:
    """The uid and gid of the user a child switches to when the worker is root.

    ``spec`` is a user name or a numeric uid; root is refused. Raises ValueError.
    """
    spec = str(spec).strip()
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except KeyError:
        if spec == DEFAULT_USER:
            return _NOBODY_IDS
        if not spec.isdigit():
            raise ValueError(f"no user named {spec!r} on this system") from None
        ids = (int(spec), int(spec))
    else:
        ids = (entry.pw_uid, entry.pw_gid)
    if ids[0] == 0:
        raise ValueError(f"{spec!r} is root; scripts must run as an unprivileged user")
    if not all(0 <= number < _NO_ID for number in ids):
        raise ValueError(f"{spec!r} is not a valid user id")
    return ids


class _Libc:
    """The few C library calls the confinement needs, through ctypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong, ctypes.c_ulong]
        self._prctl.restype = ctypes.c_int
        self._capset = libc.capset
        self._capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._capset.restype = ctypes.c_int

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        result = int(self._prctl(option, arg2, arg3, 0, 0))
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl({option}): {os.strerror(code)}")
        return result

    def clear_capabilities(self) -> None:
        """Empty the effective, permitted and inheritable sets (always allowed)."""
        header = struct.pack("=Ii", _CAPABILITY_VERSION_3, 0)
        data = bytes(24)  # two zeroed {effective, permitted, inheritable} halves
        header_buf = ctypes.create_string_buffer(header, len(header))
        data_buf = ctypes.create_string_buffer(data, len(data))
        if self._capset(header_buf, data_buf) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"capset: {os.strerror(code)}")


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 63  # PR_CAPBSET_DROP answers EINVAL beyond the last one


class SeccompProgram:
    """The filter of one architecture; :meth:`for_pid` gives the bytes for one child."""

    def __init__(self, audit_arch: int, numbers: dict[str, int], other_abi: int | None
                 ) -> None:
        self.audit_arch = audit_arch
        self.numbers = numbers
        self.other_abi = other_abi

    def for_pid(self, pid: int) -> bytes:
        """The sock_filter array: signals and prlimit only aimed at ``pid`` (or 0)."""
        code: list[tuple[int, str | None, str | None, int]] = []  # op, jt, jf, k

        def op(kind: int, k: int, jt: str | None = None, jf: str | None = None) -> None:
            code.append((kind, jt, jf, k))

        labels: dict[str, int] = {}
        op(_LD_ABS_W, _ARCH_OFFSET)
        op(_JEQ_K, self.audit_arch, None, "kill")
        op(_LD_ABS_W, _NR_OFFSET)
        if self.other_abi is not None:
            op(_JGE_K, self.other_abi, "deny")
        for name in DENIED:
            if name in self.numbers:
                op(_JEQ_K, self.numbers[name], "deny")
        for name in SELF_ONLY:
            op(_JEQ_K, self.numbers[name], "self_only")
        for name in SELF_OR_ZERO:
            op(_JEQ_K, self.numbers[name], "self_or_zero")
        op(_JEQ_K, self.numbers["ioctl"], "ioctl")
        op(_RET_K, _RET_ALLOW)
        labels["self_or_zero"] = len(code)
        op(_LD_ABS_W, _arg_low(0))
        op(_JEQ_K, 0, "allow")
        op(_JEQ_K, pid, "allow", "deny")
        labels["self_only"] = len(code)
        op(_LD_ABS_W, _arg_low(0))
        op(_JEQ_K, pid, "allow", "deny")
        labels["ioctl"] = len(code)
        op(_LD_ABS_W, _arg_low(1))
        op(_JEQ_K, TIOCSTI, "deny")
        op(_JEQ_K, TIOCLINUX, "deny")
        labels["allow"] = len(code)
        op(_RET_K, _RET_ALLOW)
        labels["deny"] = len(code)
        op(_RET_K, _RET_EPERM)
        labels["kill"] = len(code)
        op(_RET_K, _RET_KILL_PROCESS)

        out = bytearray()
        for index, (kind, jt, jf, k) in enumerate(code):
            offsets = [0 if label is None else labels[label] - index - 1 for label in (jt, jf)]
            if not all(0 <= offset <= 255 for offset in offsets):
                raise ConfinementError("seccomp filter jump out of range")
            out += struct.pack("=HBBI", kind, offsets[0], offsets[1], k)
        return bytes(out)


def seccomp_program() -> tuple[SeccompProgram | None, str | None]:
    """The filter for this machine, or None and the reason it cannot be installed."""
    machine = platform.machine()
    arch = ARCHITECTURES.get(machine)
    if arch is None:
        return None, (f"no seccomp filter for script children on {machine or 'this machine'} "
                      f"(system call numbers known for {', '.join(sorted(ARCHITECTURES))})")
    try:
        _Libc().prctl(PR_GET_SECCOMP)
    except OSError as exc:
        return None, f"no seccomp filter for script children: the kernel has none ({exc})"
    return SeccompProgram(*arch), None


def missing_layers() -> list[str]:
    """One line for each layer this machine cannot give script children."""
    missing = [seccomp_program()[1], LandlockRuleset.probe()[1]]
    return [reason for reason in missing if reason]


class Confinement:
    """Prepared in the fork server, applied in each script child (:meth:`apply`)."""

    def __init__(self, user: tuple[int, int] | None) -> None:
        self.user = user or _NOBODY_IDS
        self.libc = _Libc()
        self.last_capability = _last_capability()
        self.program, _missing = seccomp_program()
        self.landlock, _missing = LandlockRuleset.probe()

    def apply(self) -> None:
        """Confine the calling process for good; raises ConfinementError."""
        try:
            if os.geteuid() == 0:
                self._become_user()
            self._clear_capabilities()
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new process or thread
            parent = os.getppid()
            self.libc.prctl(PR_SET_PDEATHSIG, _SIGKILL)  # after the switch, which resets it
            if os.getppid() != parent:
                os._exit(3)  # the fork server is already gone
            self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
            if self.landlock is not None:
                self.landlock.restrict_self()
            if self.program is not None:
                self._install(self.program.for_pid(os.getpid()))
        except OSError as exc:
            raise ConfinementError(str(exc)) from None
        if os.geteuid() == 0 or os.getuid() == 0:
            raise ConfinementError("the script process is still root")

    def _become_user(self) -> None:
        for capability in range(self.last_capability + 1):
            self.libc.prctl(PR_CAPBSET_DROP, capability)
        uid, gid = self.user
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # clears the effective and permitted capabilities

    def _clear_capabilities(self) -> None:
        try:
            self.libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # a kernel without ambient capabilities
                raise
        self.libc.clear_capabilities()

    def _install(self, program: bytes) -> None:
        count = len(program) // 8
        filters = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(count, ctypes.addressof(filters))
        self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def become_subreaper() -> None:
    """Orphans of the calling process's descendants become its children, not init's."""
    _Libc().prctl(PR_SET_CHILD_SUBREAPER, 1)
