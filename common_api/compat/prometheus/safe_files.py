"""A worker's own prometheus_client files, kept safe from the state directory's faults.

prometheus_client keeps each metric value of a process in a memory-mapped file. On a full
tmpfs a store into a page that was never allocated kills the process with SIGBUS (the
kernel cannot back the page), and on a read-only or deleted directory the file cannot be
created at all, which fails the app's import and with it the worker's boot. So, once per
process, ``install`` changes how prometheus_client's ``MmapedDict`` allocates:

- every byte a store will touch is reserved first with ``posix_fallocate``, so a full
  file system is an ``OSError`` at allocation, never a SIGBUS at a store;
- when a value file cannot be created or grown, it is *detached*: its content moves to
  anonymous memory and the process keeps counting there (the host's code never sees an
  error), with one warning naming the file and the reason. Such values are missing from
  ``/metrics`` until the file is back;
- ``reattach`` (the worker's state-sync thread calls it every half second) writes each
  detached, deleted or replaced value file back to its path in the shared directory
  with the current values and maps it again, so when the fault clears the worker's
  counts reappear, none lost.

Files that are not the process's own value files (the fold's archives) are never
detached: their allocation failure is an ``OSError`` for the caller. The prometheus_client
internals this relies on are checked in ``common_api.compat.prometheus``; on a version that
lacks one, ``install`` does nothing (said once in the log and in health).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from typing import Any

from common_api.compat import prometheus as compat
from common_api.compat.prometheus import MmapedDict
from common_api.errors import describe_error

log = logging.getLogger(__name__)

_HEADER = struct.Struct("i")
_ENTRY_TAIL = 16  # value and timestamp, two doubles
_FIRST_CAPACITY = mmap.PAGESIZE
_DETACHED = "_common_api_detached"
_installed = threading.Lock()
_state: dict[str, Any] = {"installed": False}


class _NoFile:
    """Stands in for the file of a value file that could not be created."""

    def fileno(self) -> int:
        raise OSError("no file")

    def close(self) -> None:
        return None


class SafeMmapedDict(MmapedDict):
    """common_api's own kind of prometheus_client value file: it allocates every byte before
    storing it, and a value file of this process that cannot be written is kept in memory
    (see the module's docstring). prometheus_client's own ``MmapedDict`` is left as it is."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        _guarded_init(self, filename, read_mode)

    def _init_value(self, key: str) -> None:
        _guarded_init_value(self, key)


def install() -> None:
    """Have this process's prometheus_client value files made as ``SafeMmapedDict``
    (idempotent): the one name ``prometheus_client.values`` creates them by is pointed at
    the subclass, and no function of prometheus_client is replaced."""
    with _installed:
        if _state["installed"] or not compat.SAFE_FILES:
            return
        compat.use_value_file_class(SafeMmapedDict)
        _state["installed"] = True


def archive_file(path: str) -> MmapedDict:
    """A metric file that is not a value file of this process (the fold's archives): made
    safely where the safe files are installed, so a full directory is an OSError for the
    caller, never a SIGBUS."""
    return SafeMmapedDict(path) if _state["installed"] else MmapedDict(path)  # type: ignore[no-untyped-call]


def _value_files() -> dict[str, MmapedDict]:
    """prometheus_client's own per-process files (prefix -> file)."""
    return compat.value_files()


def _values_lock() -> Any:
    return compat.values_lock()


def _is_value_file(target: MmapedDict) -> bool:
    return any(f is target for f in _value_files().values())


def _guarded_init(self: MmapedDict, filename: str, read_mode: bool = False) -> None:
    if read_mode:
        MmapedDict.__init__(self, filename, read_mode)  # type: ignore[no-untyped-call]
        return
    try:
        if not os.path.exists(filename):
            _create(filename)
        MmapedDict.__init__(self, filename, read_mode)  # type: ignore[no-untyped-call]
    except OSError as error:
        if not os.path.basename(filename).endswith(f"_{os.getpid()}.db"):
            raise  # not this process's value file (an archive being written)
        _open_detached(self, filename, describe_error(error))


def _create(filename: str) -> None:
    """Put an empty value file at ``filename`` in one step: allocated, with a valid header,
    so a scrape never sees it half made (a zero header would read as a corrupt file)."""
    staging = f"{filename}.{os.getpid()}.new.tmp"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, _FIRST_CAPACITY)
        os.pwrite(fd, _HEADER.pack(8), 0)
        if not os.path.exists(filename):  # this process's own name: nobody else makes it
            os.rename(staging, filename)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(staging)


def _open_detached(target: MmapedDict, filename: str, reason: str) -> None:
    target._fname = filename
    target._f = _NoFile()  # type: ignore[assignment]
    target._capacity = _FIRST_CAPACITY
    target._m = mmap.mmap(-1, _FIRST_CAPACITY)
    target._positions = {}
    target._used = 8
    target._m[0:4] = _HEADER.pack(8)
    _mark_detached(target, reason)


def _mark_detached(target: MmapedDict, reason: str) -> None:
    setattr(target, _DETACHED, reason)
    log.warning("common_api: worker %d keeps %s in memory, outside /metrics, because the "
                "file cannot be written: %s (retried every half second)",
                os.getpid(), os.path.basename(target._fname), reason)


def _guarded_init_value(self: MmapedDict, key: str) -> None:
    encoded = key.encode("utf-8")
    padding = 8 - (len(encoded) + 4) % 8
    entry = struct.pack(f"i{len(encoded) + padding}sdd", len(encoded),
                        encoded + b" " * padding, 0.0, 0.0)
    end = self._used + len(entry)
    _reserve(self, end)
    self._m[self._used:end] = entry
    self._used = end
    self._m[0:4] = _HEADER.pack(end)
    self._positions[key] = end - _ENTRY_TAIL


def _reserve(target: MmapedDict, end: int) -> None:
    """Make bytes up to ``end`` storable without SIGBUS (file-backed or in memory)."""
    capacity = target._capacity
    while end > capacity:
        capacity *= 2
    if getattr(target, _DETACHED, None):
        if capacity != target._capacity:
            _grow_in_memory(target, capacity)
        return
    try:
        fd = target._f.fileno()
        os.posix_fallocate(fd, target._used, end - target._used)
        if capacity != target._capacity:
            os.ftruncate(fd, capacity)
            target._m = mmap.mmap(fd, capacity)
            target._capacity = capacity
    except OSError as error:
        if not _is_value_file(target):
            raise
        _grow_in_memory(target, capacity)
        _mark_detached(target, describe_error(error))


def _grow_in_memory(target: MmapedDict, capacity: int) -> None:
    memory = mmap.mmap(-1, capacity)
    memory[:target._used] = target._m[:target._used]
    target._m = memory
    target._capacity = capacity


def detached() -> dict[str, str]:
    """This process's value files that are not in the shared directory now, with why."""
    problems: dict[str, str] = {}
    for target in list(_value_files().values()):
        reason = getattr(target, _DETACHED, None)
        if reason:
            problems[os.path.basename(target._fname)] = reason
    return problems


def misplaced() -> dict[str, str]:
    """This process's value files whose values are not in the shared directory now
    (detached, deleted or replaced), by name, with why: a sum over the directory misses
    them."""
    if not _state["installed"]:
        return {}
    return {os.path.basename(target._fname):
            getattr(target, _DETACHED, None) or "deleted or replaced"
            for target in list(_value_files().values())
            if target._m is not None and _needs_reattach(target)}


def placed() -> dict[str, int]:
    """This process's value files that are in the shared directory now: name -> inode of
    the file it maps. A reader that finds another inode (or none) at that name knows the
    entry is stale: the file was deleted or replaced after it was published."""
    if not _state["installed"]:
        return {}
    found: dict[str, int] = {}
    for target in list(_value_files().values()):
        if target._m is None or getattr(target, _DETACHED, None):
            continue
        with contextlib.suppress(OSError):
            found[os.path.basename(target._fname)] = os.fstat(target._f.fileno()).st_ino
    return found


def _needs_reattach(target: MmapedDict) -> bool:
    if getattr(target, _DETACHED, None):
        return True
    try:
        on_disk = os.stat(target._fname).st_ino
        return on_disk != os.fstat(target._f.fileno()).st_ino
    except OSError:
        return True


def reattach() -> list[str]:
    """Write detached, deleted or replaced value files back; the names that came back."""
    if not _state["installed"]:
        return []
    restored = []
    with _values_lock():
        for target in list(_value_files().values()):
            if target._m is None or not _needs_reattach(target):
                continue
            try:
                _write_back(target)
            except OSError as error:
                if not getattr(target, _DETACHED, None):
                    _mark_detached(target, describe_error(error))
                continue
            restored.append(os.path.basename(target._fname))
    for name in restored:
        log.warning("common_api: worker %d's %s is back in the shared directory",
                    os.getpid(), name)
    return restored


def _write_back(target: MmapedDict) -> None:
    """A fresh file at the target's path holding its current content, then mapped."""
    path = target._fname
    staging = f"{path}.{os.getpid()}.tmp"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, target._capacity)
        os.pwrite(fd, bytes(target._m[:target._used]), 0)
        memory = mmap.mmap(fd, target._capacity)
        os.replace(staging, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise
    old_file, old_memory = target._f, target._m
    target._f = os.fdopen(fd, "a+b")
    target._m = memory
    with contextlib.suppress(AttributeError):
        delattr(target, _DETACHED)
    with contextlib.suppress(Exception):
        old_file.close()
    del old_memory


def value_files() -> Iterator[str]:
    """Paths of this process's value files (for tests and diagnostics)."""
    for target in list(_value_files().values()):
        yield target._fname
