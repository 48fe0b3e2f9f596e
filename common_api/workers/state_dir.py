"""The shared state directory of one server: its layout and safe file primitives.

Layout (all under ``COMMON_API_STATE_DIR``):

- ``prometheus/``        prometheus_client multiprocess files (``PROMETHEUS_MULTIPROC_DIR``)
- ``metrics.lock``       readers of ``prometheus/`` take it shared, the fold takes it exclusive
- ``metrics-baseline.json``  the snapshot ``/metrics/reset`` subtracts
- ``loglevels.json``     the log levels set through any worker (``loglevels.lock`` guards it)
- ``workers/<pid>.json`` each worker's periodic-thread statuses and thread names
- ``dumps/<pid>.txt``    where each worker's faulthandler writes its stacks on a signal
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class StateDir:
    """Paths inside one server's state directory, created on first use."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.prometheus = self.root / "prometheus"
        self.workers = self.root / "workers"
        self.dumps = self.root / "dumps"
        self.metrics_lock = self.root / "metrics.lock"
        self.metrics_baseline = self.root / "metrics-baseline.json"
        self.loglevels = self.root / "loglevels.json"
        self.loglevels_lock = self.root / "loglevels.lock"
        self.dumps_lock = self.root / "dumps.lock"

    def create(self) -> StateDir:
        for directory in (self.root, self.prometheus, self.workers, self.dumps):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    def worker_status(self, pid: int) -> Path:
        return self.workers / f"{pid}.json"

    def worker_dump(self, pid: int) -> Path:
        return self.dumps / f"{pid}.txt"

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write ``payload`` so that readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON content of ``path``, or None if it is missing or unreadable."""
    try:
        with path.open() as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def file_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """An advisory lock shared by every process that opens ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime_ns, size): changes whenever the file is replaced or rewritten."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def live_peer_pids(directory: Path, pattern: str) -> list[int]:
    """Pids named by the files ``pattern`` matches in ``directory`` (``<pid>.ext``),
    other than this process's, whose process still exists."""
    own = os.getpid()
    pids = []
    for path in directory.glob(pattern):
        with contextlib.suppress(ValueError):
            pid = int(path.stem)
            if pid != own and pid_alive(pid):
                pids.append(pid)
    return sorted(pids)


class ParsedFile(Generic[T]):
    """A JSON file read through ``parse``, parsed again only when the file changes
    (``parse`` receives None when the file is missing or unreadable)."""

    def __init__(self, path: Path, parse: Callable[[Any], T]) -> None:
        self._path = path
        self._parse = parse
        self._cached: tuple[tuple[int, int, int] | None, T] | None = None

    def get(self) -> T:
        signature = file_signature(self._path)
        if self._cached is not None and self._cached[0] == signature:
            return self._cached[1]
        value = self._parse(read_json(self._path) if signature is not None else None)
        self._cached = (signature, value)
        return value
