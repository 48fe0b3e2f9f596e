"""The shared state directory of one server: its layout and safe file primitives.

Layout (all under ``COMMON_API_STATE_DIR``):

- ``prometheus/``        prometheus_client multiprocess files (``PROMETHEUS_MULTIPROC_DIR``)
- ``metrics.lock``       readers of ``prometheus/`` take it shared, the fold takes it exclusive
- ``metrics-baseline.json``  the snapshot ``/metrics/reset`` subtracts
- ``loglevels.json``     the log levels set through any worker (``loglevels.lock`` guards it)
- ``workers/<pid>.json`` each worker's periodic-thread statuses and thread names
- ``dumps/<pid>.txt``    where each worker's faulthandler writes its stacks on a signal

The directory can fail under the server: fill up, turn read-only, be deleted, hold a
truncated or garbled file. The primitives here are the one place that meets those faults:
locks recreate a deleted directory and fall back to a read-only open, a file that cannot
be parsed is set aside (renamed with a ``.corrupt-<time>`` suffix, logged once) and, where
a last good value is known, written back, so one bad file never decides for the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from common_api import file_locks
from common_api.errors import Unavailable, describe_error

T = TypeVar("T")

PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CORRUPT_SUFFIX = ".corrupt-"
# a temporary file this old was left by a writer that died
STRAY_TMP_AGE = 60.0

log = logging.getLogger(__name__)


class StateDir:
    """Paths inside one server's state directory, created on first use."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.prometheus = self.root / "prometheus"
        self.workers = self.root / "workers"
        self.metrics_lock = self.root / "metrics.lock"
        self.metrics_baseline = self.root / "metrics-baseline.json"
        self.loglevels = self.root / "loglevels.json"
        self.loglevels_lock = self.root / "loglevels.lock"

    def create(self) -> StateDir:
        """The directories, and the lock files: a lock file that exists can still be
        opened (read-only) and locked if the directory later turns read-only."""
        for directory in (self.root, self.prometheus, self.workers):
            directory.mkdir(parents=True, exist_ok=True)
        for lock in (self.metrics_lock, self.loglevels_lock):
            lock.touch(mode=0o600, exist_ok=True)
        return self

    def ensure(self) -> bool:
        """Recreate whatever part of the directory is missing (it may have been deleted
        under the server); True if something was recreated. Raises OSError when the
        directory cannot be created (read-only or full file system)."""
        missing = [d for d in (self.root, self.prometheus, self.workers)
                   if not d.is_dir()]
        if missing:
            self.create()
        return bool(missing)

    def worker_status(self, pid: int) -> Path:
        return self.workers / f"{pid}.json"

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write ``payload`` so that readers see the old file or the new one, never a part.

    A deleted directory is not created here: that is ``StateDir.ensure``'s job (the
    state-sync thread's), so a write in the meantime fails instead of half-succeeding."""
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
    except (OSError, ValueError):
        return None




class StateFileError(Unavailable, OSError):
    """A state file or lock cannot be used now (full, read-only or deleted directory): a
    503 for an endpoint, with ``message``, and still the OSError it came from (errno,
    strerror, filename) for code that handles those."""

    def __init__(self, message: str, cause: OSError) -> None:
        OSError.__init__(self, cause.errno, cause.strerror, cause.filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


class LockUnavailable(StateFileError):
    """A state lock cannot be opened."""


@contextlib.contextmanager
def file_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """A state lock (``common_api.file_locks``), re-entrant within a thread; one that
    cannot be opened at all (a deleted directory) is ``LockUnavailable``, a 503."""
    def unavailable(error: OSError) -> LockUnavailable:
        return LockUnavailable(f"{path.name} cannot be opened ({describe_error(error)})", error)

    with file_locks.file_lock(path, exclusive, on_open_error=unavailable, reentrant=True):
        yield


def set_aside(path: Path, reason: str) -> Path | None:
    """Rename a file that cannot be used to ``<name>.corrupt-<time>`` and log it once
    (the renamed file is never read again); None if it could not be renamed."""
    target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{time.time():.3f}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("common_api: %s is unusable (%s) and could not be set aside: %s",
                    path, reason, describe_error(error))
        return None
    log.warning("common_api: %s was unusable (%s); set aside as %s", path, reason,
                target.name)
    return target


def sweep_stray_files(directories: list[Path], older_than: float = STRAY_TMP_AGE) -> int:
    """Remove ``*.tmp`` files left by writers that died; how many were removed."""
    removed = 0
    cutoff = time.time() - older_than
    for directory in directories:
        with contextlib.suppress(OSError):
            for path in directory.glob("*.tmp"):
                with contextlib.suppress(OSError):
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                        log.info("common_api: removed stray temporary file %s", path)
    return removed


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
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def live_peer_pids(directory: Path, pattern: str) -> list[int]:
    """Pids named by the files ``pattern`` matches in ``directory`` (``<pid>.ext``),
    other than this process's, whose process still exists."""
    own = os.getpid()
    pids = []
    with contextlib.suppress(OSError):
        for path in directory.glob(pattern):
            with contextlib.suppress(ValueError):
                pid = int(path.stem)
                if pid != own and pid_alive(pid):
                    pids.append(pid)
    return sorted(pids)


class CorruptFile(Unavailable):
    """A state file exists but its content cannot be used; ``str()`` says why (an
    endpoint that meets it answers 503 with that reason)."""


class UnwritableFile(StateFileError):
    """A state file cannot be written now."""


class ParsedFile(Generic[T]):
    """A JSON file read through ``parse``, parsed again only when the file changes.

    ``parse`` receives the decoded JSON and raises ``ValueError``, ``TypeError`` or
    ``KeyError`` when its shape is wrong; a missing file gives ``missing``. A file that
    cannot be read or parsed is set aside once (logged with what was wrong). Then, if this
    process knows a last good value and ``render`` is given, that value is written back
    under ``lock``, so a garbled or deleted file comes back as it was; without one,
    ``get`` raises ``CorruptFile`` until a good file appears. Writers use ``write`` (under
    the same lock), so a restore never overwrites a newer value.
    """

    def __init__(self, path: Path, parse: Callable[[Any], T], missing: T,
                 render: Callable[[T], Any] | None = None, lock: Path | None = None) -> None:
        self._path = path
        self._parse = parse
        self._missing = missing
        self._render = render
        self._lock_path = lock
        self._cached: tuple[tuple[int, int, int] | None, T] | None = None
        self._last_good: T | None = None
        self._problem: str | None = None
        self._mutex = threading.Lock()

    @property
    def problem(self) -> str | None:
        """Why the file could not be used the last time it was read (None when it could)."""
        return self._problem

    def get(self) -> T:
        signature = file_signature(self._path)
        cached = self._cached
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._mutex:
            return self._load(signature)

    def write(self, value: T) -> None:
        """Replace the file with ``value`` (rendered), under the lock; UnwritableFile
        (a 503 for the endpoint) says why it could not be."""
        if self._render is None:
            raise TypeError("this ParsedFile has no render function")
        try:
            with self._locked():
                write_json_atomically(self._path, self._render(value))
                self._remember(value)
        except StateFileError:
            raise
        except OSError as error:
            raise UnwritableFile(f"{self._path.name} cannot be written "
                                 f"({describe_error(error)})", error) from None

    def _remember(self, value: T) -> None:
        self._last_good = value
        self._problem = None
        self._cached = (file_signature(self._path), value)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        if self._lock_path is None:
            return contextlib.nullcontext()
        return file_lock(self._lock_path, exclusive=True)

    def _load(self, signature: tuple[int, int, int] | None) -> T:
        if signature is None:
            if self._last_good is not None and self._render is not None:
                return self._restore("it was deleted")
            self._cached = (None, self._missing)
            return self._missing
        try:
            with self._path.open("rb") as handle:
                raw = handle.read()
            value = self._parse(json.loads(raw))
        except FileNotFoundError:
            return self._load(None)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            reason = "empty file" if signature[2] == 0 else describe_error(error)
            return self._corrupt(signature, reason)
        self._last_good = value
        self._problem = None
        self._cached = (signature, value)
        return value

    def _corrupt(self, signature: tuple[int, int, int], reason: str) -> T:
        with self._locked():
            if file_signature(self._path) == signature:
                set_aside(self._path, reason)
        if self._last_good is not None and self._render is not None:
            return self._restore(f"it was unusable: {reason}")
        self._problem = f"{self._path.name} was unusable ({reason})"
        self._cached = None
        raise CorruptFile(self._problem)

    def _restore(self, why: str) -> T:
        value = self._last_good
        assert value is not None and self._render is not None
        self._cached = None  # the next get reads whatever the file holds then
        try:
            with self._locked():
                if not self._path.exists():
                    write_json_atomically(self._path, self._render(value))
                    self._cached = (file_signature(self._path), value)
                    log.warning("common_api: restored %s from this process's last good "
                                "copy (%s)", self._path, why)
        except OSError as error:
            # the directory cannot take it now: answer from the copy, retry on the next get
            self._problem = f"{self._path.name} could not be restored ({describe_error(error)})"
            return value
        self._problem = None
        return value
