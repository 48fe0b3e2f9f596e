"""``scope=all`` for /profile and /memory: every worker of the server runs the same window.

The answering worker writes a request into the state directory (``windows/<id>.json``:
what to run, and when the window starts, a little ahead so that every worker has seen it),
runs its own part, and collects what the others wrote (``windows/<id>.<pid>.json``) until
a deadline. The asker wakes each worker through that worker's FIFO (``windows/<pid>.wake``,
read by a thread that blocks on it, costing nothing while idle); every worker also looks
for requests from its runtime's background thread a few times a second, in case a wake-up
was lost. Each runs its part in a thread of its own, ending when the window ends even if
it started late. A worker that does not
answer by the deadline (stopped, exited, too busy) is named, never waited for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from common_api.errors import Unavailable
from common_api.services.memory import MemoryReport, MemoryWindow
from common_api.services.profiler import MemoryRequest, ProfileRequest
from common_api.services.profiling import Frame, Profile, Sampler
from common_api.workers.state_dir import StateDir, pid_alive, read_json, write_json_atomically

log = logging.getLogger(__name__)

LEAD_SECONDS = 0.3       # the window starts this long after the request is written
ANSWER_GRACE = 3.0       # how long after the window's end a worker's part may come in
STALE_SECONDS = 600.0    # leftovers older than this are removed
T = TypeVar("T")
PEER_THREAD_NAME = "common-api-peer-window"
LISTENER_THREAD_NAME = "common-api-window-listener"


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    return {"frames": [[f.name, f.file, f.line, f.kind] for f in profile.frames],
            "stacks": [[list(stack), count] for stack, count in profile.stacks.items()],
            "duration": profile.duration, "hz": profile.hz, "ticks": profile.ticks,
            "started_at": profile.started_at}


def profile_from_dict(data: dict[str, Any]) -> Profile:
    return Profile([Frame(str(n), str(f), int(line), str(k)) for n, f, line, k in data["frames"]],
                   {tuple(int(i) for i in stack): int(count) for stack, count in data["stacks"]},
                   float(data["duration"]), int(data["hz"]), int(data["ticks"]),
                   float(data["started_at"]))


def _decoded(answers: dict[int, Any], missing: dict[int, str],
             decode: Callable[[dict[str, Any]], T]) -> tuple[dict[int, T], dict[int, str]]:
    """The other workers' answers decoded (this worker's is already an object); an answer
    that cannot be read makes its worker missing rather than failing the request."""
    decoded: dict[int, T] = {}
    for pid, data in answers.items():
        if not isinstance(data, dict):
            decoded[pid] = data
            continue
        try:
            decoded[pid] = decode(data)
        except (KeyError, TypeError, ValueError):
            missing[pid] = "its answer could not be read"
    return decoded, missing


class PeerWindows:
    """The request/answer exchange of one server's workers (one per worker runtime)."""

    def __init__(self, state: StateDir, peers: Callable[[], list[int]]) -> None:
        self._dir = state.root / "windows"
        self._peers = peers
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._listening: tuple[int, int] | None = None  # (pid, fd of its FIFO)

    def listen(self) -> None:
        """Make this worker wake up at once for a request (its FIFO and a thread reading
        it); called once per worker process, a failure only means waking on the next poll."""
        pid = os.getpid()
        if self._listening is not None:
            if self._listening[0] == pid:
                return
            with contextlib.suppress(OSError):
                os.close(self._listening[1])  # the parent's, inherited through fork
        self._listening = None
        wake = self._dir / f"{pid}.wake"
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                wake.unlink()
            os.mkfifo(wake, 0o600)
            fd = os.open(wake, os.O_RDWR)  # read-write: never sees end-of-file
        except OSError as exc:
            log.warning("common_api: no wake-up FIFO for peer windows (%s); polling only", exc)
            return
        self._listening = (pid, fd)
        threading.Thread(target=self._listen, args=(fd,), name=LISTENER_THREAD_NAME,
                         daemon=True).start()

    def _listen(self, fd: int) -> None:
        while True:
            try:
                if not os.read(fd, 512):
                    return
            except OSError:
                return
            self.poll()

    def _wake(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                fd = os.open(self._dir / f"{pid}.wake", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # no reader (gone or not listening): it polls anyway
            try:
                os.write(fd, b"w")
            except OSError:
                pass
            finally:
                os.close(fd)

    # the answering worker's side

    def profiles(self, request: ProfileRequest, run_own: Callable[[], Profile]
                 ) -> tuple[dict[int, Profile], dict[int, str]]:
        answers, missing = self._ask("profile", request.to_dict(), request.seconds, run_own)
        return _decoded(answers, missing, profile_from_dict)

    def memory(self, request: MemoryRequest, run_own: Callable[[], MemoryReport]
               ) -> tuple[dict[int, MemoryReport], dict[int, str]]:
        answers, missing = self._ask("memory", request.to_dict(), request.seconds, run_own)
        return _decoded(answers, missing, MemoryReport.from_dict)

    def _ask(self, kind: str, params: dict[str, Any], seconds: float,
             run_own: Callable[[], Any]) -> tuple[dict[int, Any], dict[int, str]]:
        peers = self._peers()
        ident = secrets.token_hex(8)
        start = time.time() + (LEAD_SECONDS if peers else 0.0)
        request_path = self._dir / f"{ident}.json"
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._sweep()
            write_json_atomically(request_path, {"id": ident, "kind": kind, "params": params,
                                                 "start": start, "end": start + seconds,
                                                 "requester": os.getpid()})
        except OSError as exc:
            raise Unavailable(f"Cannot ask the other workers for their part of the window "
                              f"({self._dir}: {exc.strerror or exc})") from None
        self._wake(peers)
        try:
            time.sleep(max(0.0, start - time.time()))
            answers: dict[int, Any] = {os.getpid(): run_own()}
            deadline = time.monotonic() + max(0.0, start + seconds - time.time()) + ANSWER_GRACE
            waiting = set(peers)
            while waiting:
                for pid in sorted(waiting):
                    data = read_json(self._dir / f"{ident}.{pid}.json")
                    if isinstance(data, dict):
                        answers[pid] = data
                        waiting.discard(pid)
                if not waiting or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        finally:
            with contextlib.suppress(FileNotFoundError):
                request_path.unlink()
            for leftover in self._dir.glob(f"{ident}.*.json"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        missing = {pid: ("exited during the window" if not pid_alive(pid)
                         else "no answer within the deadline (stopped or too busy)")
                   for pid in waiting}
        return answers, missing

    def _sweep(self) -> None:
        now = time.time()
        for path in self._dir.glob("*.json"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_SECONDS:
                    path.unlink()
        for path in self._dir.glob("*.wake"):
            with contextlib.suppress(OSError, ValueError):
                if not pid_alive(int(path.stem)):
                    path.unlink()

    # every worker's side

    def poll(self) -> None:
        """Start this worker's part of any request it has not seen; never raises."""
        try:
            requests = list(self._dir.glob("*.json"))
        except OSError:
            return
        for path in requests:
            if path.name.count(".") != 1:
                continue  # an answer, not a request
            with self._lock:
                if path.stem in self._seen:
                    continue
                self._seen.add(path.stem)
                if len(self._seen) > 1000:
                    self._seen = {path.stem}
            data = read_json(path)
            if not isinstance(data, dict) or data.get("requester") == os.getpid() or \
                    float(data.get("end", 0)) <= time.time():
                continue
            threading.Thread(target=self._run_part, args=(data,), name=PEER_THREAD_NAME,
                             daemon=True).start()

    def _run_part(self, data: dict[str, Any]) -> None:
        try:
            time.sleep(max(0.0, float(data["start"]) - time.time()))
            seconds = float(data["end"]) - time.time()
            if seconds <= 0:
                return
            params = data["params"]
            answer: dict[str, Any]
            if data["kind"] == "profile":
                sampler = Sampler(int(params["hz"]), params.get("name"),
                                  bool(params["drop_idle"]))
                answer = profile_to_dict(sampler.run(seconds))
            else:
                answer = MemoryWindow().measure(seconds, int(params["top"]),
                                                str(params["group"])).to_dict()
            request = self._dir / f"{data['id']}.json"
            if request.exists():  # the asker still waits
                write_json_atomically(self._dir / f"{data['id']}.{os.getpid()}.json", answer)
        except Exception:
            log.exception("common_api: this worker's part of a %s window failed",
                          data.get("kind"))
