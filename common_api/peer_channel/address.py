"""Where a worker's socket is: named from the server's identity and the worker's pid."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ABSTRACT = sys.platform.startswith("linux")
PREFIX = "common_api-peer"


def server_identity(*parts: object) -> str:
    """A short name that every worker of one server computes alike (from, say, the state
    directory and the master's pid) and no other server shares."""
    digest = hashlib.sha256("\0".join(str(part) for part in parts).encode()).hexdigest()
    return digest[:20]


def _private_directory(identity: str) -> Path:
    """Where socket files live where abstract names do not exist: a directory only this
    user can enter (the socket path stays under the 104-byte limit)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / f"{PREFIX}-{os.geteuid()}" / identity


@dataclass(frozen=True)
class ChannelAddress:
    """The socket of worker ``pid`` of the server ``identity``."""

    identity: str
    pid: int

    @property
    def abstract(self) -> bool:
        return ABSTRACT

    def sockaddr(self) -> str:
        if ABSTRACT:
            return f"\0{PREFIX}/{self.identity}/{self.pid}"
        return str(_private_directory(self.identity) / f"{self.pid}.sock")

    def prepare(self) -> None:
        """Before binding: make the private directory (socket files only), and remove a
        socket file a process with this pid left behind."""
        if ABSTRACT:
            return
        directory = _private_directory(self.identity)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.parent.stat().st_uid != os.geteuid():
            raise PermissionError(f"{directory.parent} belongs to another user")
        os.chmod(directory.parent, 0o700)
        path = directory / f"{self.pid}.sock"
        if path.is_socket():
            path.unlink()

    def release(self) -> None:
        if not ABSTRACT:
            (_private_directory(self.identity) / f"{self.pid}.sock").unlink(missing_ok=True)

    def __str__(self) -> str:
        return self.sockaddr().replace("\0", "@")
