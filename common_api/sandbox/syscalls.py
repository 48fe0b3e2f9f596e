"""System call numbers of the architectures the script child's seccomp filter knows.

Only the calls :mod:`.confine` names (refused, or checked by argument) and the two
:mod:`.landlock` makes. From the
kernel's tables (``arch/x86/entry/syscalls/syscall_64.tbl`` and the generic
``include/uapi/asm-generic/unistd.h`` that aarch64 uses).
"""

from __future__ import annotations

X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_open": 434,
    "pidfd_send_signal": 424, "pidfd_getfd": 438, "kcmp": 312, "get_robust_list": 274,
    "process_madvise": 440, "process_mrelease": 448, "setpriority": 141,
    "sched_setaffinity": 203, "sched_setscheduler": 144, "sched_setparam": 142,
    "sched_setattr": 314, "ioprio_set": 251, "migrate_pages": 256, "move_pages": 279,
    "clock_settime": 227, "clock_adjtime": 305, "settimeofday": 164, "adjtimex": 159,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
    "setns": 308, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "fanotify_init": 300, "quotactl": 179, "setuid": 105,
    "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119,
    "setgroups": 116, "setfsuid": 122, "setfsgid": 123, "capset": 126, "fork": 57,
    "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "bpf": 321,
    "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
    "reboot": 169, "kexec_load": 246, "kexec_file_load": 320, "swapon": 167,
    "swapoff": 168, "acct": 163, "sethostname": 170, "setdomainname": 171, "syslog": 103,
    "vhangup": 153, "iopl": 172, "ioperm": 173, "modify_ldt": 154, "uselib": 134,
    "lookup_dcookie": 212, "nfsservctl": 180, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "socket": 41, "kill": 62,
    "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "prlimit64": 302, "ioctl": 16, "chmod": 90, "fchmod": 91, "fchmodat": 268,
    "fchmodat2": 452, "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
    "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "setxattrat": 463,
    "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "removexattrat": 466,
    "utime": 132, "utimes": 235, "utimensat": 280, "futimesat": 261,
    "landlock_create_ruleset": 444, "landlock_restrict_self": 446,
    "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
    "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
    "mq_notify": 244, "mq_getsetattr": 245,
}
# aarch64 uses the generic table: no fork, vfork, iopl, ioperm, modify_ldt, uselib, and
# only the *at forms of chmod, chown and utime.
AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_open": 434,
    "pidfd_send_signal": 424, "pidfd_getfd": 438, "kcmp": 272, "get_robust_list": 100,
    "process_madvise": 440, "process_mrelease": 448, "setpriority": 140,
    "sched_setaffinity": 122, "sched_setscheduler": 119, "sched_setparam": 118,
    "sched_setattr": 274, "ioprio_set": 30, "migrate_pages": 238, "move_pages": 239,
    "clock_settime": 112, "clock_adjtime": 266, "settimeofday": 170, "adjtimex": 171,
    "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97,
    "setns": 268, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "name_to_handle_at": 264,
    "open_by_handle_at": 265, "fanotify_init": 262, "quotactl": 60, "setuid": 146,
    "setgid": 144, "setreuid": 145, "setregid": 143, "setresuid": 147, "setresgid": 149,
    "setgroups": 159, "setfsuid": 151, "setfsgid": 152, "capset": 91, "clone": 220,
    "clone3": 435, "execve": 221, "execveat": 281, "init_module": 105,
    "finit_module": 273, "delete_module": 106, "bpf": 280, "perf_event_open": 241,
    "keyctl": 219, "add_key": 217, "request_key": 218, "reboot": 142, "kexec_load": 104,
    "kexec_file_load": 294, "swapon": 224, "swapoff": 225, "acct": 89,
    "sethostname": 161, "setdomainname": 162, "syslog": 116, "vhangup": 58,
    "lookup_dcookie": 18, "nfsservctl": 42, "userfaultfd": 282, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "socket": 198, "kill": 129,
    "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
    "prlimit64": 261, "ioctl": 29, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452,
    "fchown": 55, "fchownat": 54, "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7,
    "setxattrat": 463, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16,
    "removexattrat": 466, "utimensat": 88,
    "landlock_create_ruleset": 444, "landlock_restrict_self": 446,
    "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193,
    "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188,
    "msgctl": 187, "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182,
    "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
}
#: machine name -> (AUDIT_ARCH value, system call numbers, lowest number of another ABI)
ARCHITECTURES: dict[str, tuple[int, dict[str, int], int | None]] = {
    "x86_64": (0xC000003E, X86_64, 0x40000000),  # x32 calls set bit 30
    "aarch64": (0xC00000B7, AARCH64, None),
}
