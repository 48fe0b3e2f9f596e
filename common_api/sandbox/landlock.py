"""Landlock (Linux 5.13+): a script child changes no file and reaches no other process.

A Landlock domain needs no privilege, so it holds for a worker running as an
ordinary user too, where the child keeps the worker's uid. The ruleset handles
every access that creates, changes, removes or executes a file, with no rule that
grants any: the child may not create, write, truncate, rename or delete a file
anywhere (what it had open before stays usable: its channel and /dev/null).
Reading stays governed by the uid. The domain also makes every process outside it
unreachable for ptrace-type access: the worker's ``/proc/<pid>/mem``,
``environ``, ``fd`` (Landlock refuses ptrace access to a less sandboxed process),
and, from ABI 6, its signals and abstract UNIX sockets. From ABI 4, TCP bind and
connect are refused as well.

The fork server prepares the ruleset (:meth:`LandlockRuleset.probe`); each child
applies it after ``no_new_privs`` (:meth:`LandlockRuleset.restrict_self`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from typing import Any

from .syscalls import ARCHITECTURES

_CREATE_RULESET_VERSION = 1

# LANDLOCK_ACCESS_FS_* rights that change the file system, by the ABI that added them
_FS_CHANGES_BY_ABI = {
    1: (1 << 0)  # EXECUTE
    | (1 << 1)  # WRITE_FILE
    | (1 << 4) | (1 << 5)  # REMOVE_DIR, REMOVE_FILE
    | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9)  # MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK
    | (1 << 10) | (1 << 11) | (1 << 12),  # MAKE_FIFO, MAKE_BLOCK, MAKE_SYM
    2: 1 << 13,  # REFER (link or rename into another directory)
    3: 1 << 14,  # TRUNCATE
    5: 1 << 15,  # IOCTL_DEV (device files opened after the restriction)
}
_NET_ABI = 4
_NET_TCP = (1 << 0) | (1 << 1)  # BIND_TCP, CONNECT_TCP
_SCOPE_ABI = 6
_SCOPES = (1 << 0) | (1 << 1)  # ABSTRACT_UNIX_SOCKET, SIGNAL


def _syscall() -> Any:
    function = ctypes.CDLL(None, use_errno=True).syscall
    function.restype = ctypes.c_long
    return function


class LandlockRuleset:
    """The ruleset attribute for one kernel's Landlock ABI."""

    def __init__(self, abi: int, numbers: dict[str, int]) -> None:
        self.abi = abi
        self.create_ruleset = numbers["landlock_create_ruleset"]
        self.restrict = numbers["landlock_restrict_self"]
        fs = 0
        for added, rights in _FS_CHANGES_BY_ABI.items():
            if abi >= added:
                fs |= rights
        net = _NET_TCP if abi >= _NET_ABI else 0
        scoped = _SCOPES if abi >= _SCOPE_ABI else 0
        size = 24 if abi >= _SCOPE_ABI else 16 if abi >= _NET_ABI else 8
        self.attribute = struct.pack("=QQQ", fs, net, scoped)[:size]
        self._syscall = _syscall()

    @classmethod
    def probe(cls) -> tuple[LandlockRuleset | None, str | None]:
        """The ruleset this kernel supports, or None and why there is none."""
        machine = platform.machine()
        if machine not in ARCHITECTURES:
            return None, f"no Landlock domain for script children on {machine}"
        numbers = ARCHITECTURES[machine][1]
        abi = int(_syscall()(ctypes.c_long(numbers["landlock_create_ruleset"]), None,
                             ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)))
        if abi < 1:
            reason = os.strerror(ctypes.get_errno())
            return None, f"no Landlock domain for script children: the kernel has none ({reason})"
        return cls(abi, numbers), None

    def restrict_self(self) -> None:
        """Enter the domain for good (needs no_new_privs); raises OSError."""
        attribute = ctypes.create_string_buffer(self.attribute, len(self.attribute))
        fd = int(self._syscall(ctypes.c_long(self.create_ruleset), attribute,
                               ctypes.c_size_t(len(self.attribute)), ctypes.c_uint32(0)))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_create_ruleset: {os.strerror(code)}")
        try:
            if self._syscall(ctypes.c_long(self.restrict), ctypes.c_int(fd),
                             ctypes.c_uint32(0)) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"landlock_restrict_self: {os.strerror(code)}")
        finally:
            os.close(fd)
