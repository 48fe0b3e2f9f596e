"""gunicorn's private code that common_api relies on, checked at import.

- Plain-text server errors (``common_api.gunicorn_worker``): gunicorn answers a request it
  cannot parse from ``Worker.handle_error(req, client, addr, exc)``, which writes an HTML
  page through ``gunicorn.util.write_error`` to ``client``. common_api's worker class hands
  ``handle_error`` a socket of its own (``PlainErrorSocket``) that rewrites that page as
  plain text on its way out. Only connections of that worker class are touched; gunicorn's
  functions stay as they are for the whole process. Checked: ``handle_error``'s
  parameters, and that a page ``write_error`` writes now reads back as what it said.
- Request heads read in the event loop (``PlainErrorThreadWorker``, below): gthread's internals as
  gunicorn 27 has them (``Unreader.buf``, ``take_buffered``, ``unread``, the worker's
  ``poller``, ``nr_conns``, ``enqueue_req``, ``murder_keepalived``, ``handle``, the
  connection's ``init``, ``data_ready``, ``initialized``). Earlier versions keep
  gunicorn's own connection handling (the preset says so once at start).
- The settings at app load (``serving_config``): the frames of gunicorn's ``Worker`` or
  ``Arbiter`` that load the app, found with ``sys._getframe``.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gunicorn
from gunicorn import util
from gunicorn.arbiter import Arbiter
from gunicorn.http.unreader import Unreader
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import TConn, ThreadWorker

from common_api import startup_log
from common_api.compat import has_attributes, log, require

LIBRARY = "gunicorn"
SLOW_CLIENTS_SINCE = (27, 0)
PLAIN_ERRORS_FEATURE = "plain-text answers to requests gunicorn refuses (HTML otherwise)"
SLOW_CLIENTS_FEATURE = ("request heads read in the event loop (slow clients hold no thread; "
                        "gunicorn 27+)")
WORKER_COUNT_FEATURE = "the warning about several workers without a state directory"

HEAD_END = b"\r\n\r\n"
RECV_BYTES = 65536
_TITLE_OR_HEADING = re.compile(rb"<title>.*?</title>|<h1>.*?</h1>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(rb"<[^>]*>")


def plain_error(status_int: int, reason: str, mesg: str) -> bytes:
    """A whole HTTP/1.1 error response whose body is one line of plain text."""
    body = (f"{reason}: {mesg}" if mesg else reason).encode("latin-1", "replace")
    head = (f"HTTP/1.1 {status_int} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Cache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1", "replace")
    return head + body


def plain_from_html(data: bytes) -> bytes:
    """``write_error``'s HTML answer as plain text; anything else unchanged."""
    head, found, body = data.partition(HEAD_END)
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if not found or len(status) != 3 or not status[0].startswith(b"HTTP/") or \
            not any(line.lower().startswith(b"content-type: text/html") for line in lines):
        return data
    text = _TAG.sub(b" ", _TITLE_OR_HEADING.sub(b" ", body))
    mesg = " ".join(html.unescape(text.decode("latin-1")).split())
    return plain_error(int(status[1]), status[2].decode("latin-1"), mesg)


class PlainErrorSocket:
    """A client socket for ``Worker.handle_error``: what it sends is made plain text; every
    other use goes to the socket itself."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes, *args: Any) -> Any:
        return self._sock.sendall(plain_from_html(bytes(data)), *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Recorder:
    """A socket that keeps what is written to it (for the check below)."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        return None

    def sendall(self, data: bytes) -> None:
        self.data += data


def _error_page_reads_back() -> bool:
    mesg = "Invalid request line 'a <b> & \"c\"'"
    recorder = _Recorder()
    util.write_error(recorder, 400, "Bad Request", mesg)  # type: ignore[no-untyped-call,unused-ignore]
    return plain_from_html(recorder.data) == plain_error(400, "Bad Request", mesg)


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


PLAIN_ERRORS = require(PLAIN_ERRORS_FEATURE, LIBRARY, {
    "Worker.handle_error(req, client, addr, exc)":
        lambda: _parameters(Worker.handle_error) == ["self", "req", "client", "addr", "exc"],
    "util.write_error(sock, status_int, reason, mesg) writing an HTML page":
        _error_page_reads_back,
})

# before 27, gthread's internals differ (pipelined requests came back out of order): there
# the head reading is not used at all, by design, which the preset says at start
SLOW_CLIENTS_VERSION = tuple(gunicorn.version_info[:2]) >= SLOW_CLIENTS_SINCE
SLOW_CLIENTS = SLOW_CLIENTS_VERSION and require(SLOW_CLIENTS_FEATURE, LIBRARY, {
    "Unreader.buf, Unreader.take_buffered(), Unreader.unread(data)":
        lambda: has_attributes(Unreader.__init__, "buf")
        and _parameters(Unreader.take_buffered) == ["self"]
        and _parameters(Unreader.unread) == ["self", "data"],
    "ThreadWorker.poller, nr_conns, enqueue_req(conn), murder_keepalived(), handle(conn)":
        lambda: has_attributes(ThreadWorker.__init__, "poller", "nr_conns")
        and _parameters(ThreadWorker.enqueue_req) == ["self", "conn"]
        and _parameters(ThreadWorker.handle) == ["self", "conn"]
        and callable(ThreadWorker.murder_keepalived),
    "TConn.init(), data_ready, initialized, parser, sock, client":
        lambda: has_attributes(TConn.__init__, "data_ready", "initialized", "parser", "sock",
                               "client") and _parameters(TConn.init) == ["self"],
})


_GTHREAD_HANDLING_SAID = threading.Event()


def _say_gthread_handling(who: str) -> None:
    """Once per process, where gunicorn is older than the slow-client worker's internals."""
    if SLOW_CLIENTS_VERSION or _GTHREAD_HANDLING_SAID.is_set():
        return
    _GTHREAD_HANDLING_SAID.set()
    startup_log.warn(
        log, "common_api: gunicorn %s: %s serves with gunicorn's own gthread connection "
        "handling; reading request heads in the event loop (a slow client holds no "
        "thread) needs gunicorn %d.%d+", gunicorn.__version__, who, *SLOW_CLIENTS_SINCE)


def preset_worker_class() -> str:
    """The worker class ``common_api.gunicorn_conf`` gives gunicorn: the slow-client worker
    where gunicorn's internals are the ones it was built for, else gunicorn's own gthread
    connection handling (with plain-text errors)."""
    if SLOW_CLIENTS:
        return "common_api.gunicorn_worker.PlainErrorThreadWorker"
    _say_gthread_handling("the preset")
    return "common_api.gunicorn_worker.PlainErrorGthreadWorker"


WORKER_COUNT = require(WORKER_COUNT_FEATURE, LIBRARY, {
    "Worker.cfg and Worker.load_wsgi() loading the app": lambda: has_attributes(
        Worker.__init__, "cfg") and has_attributes(Worker.load_wsgi, "wsgi"),
    "Arbiter.cfg": lambda: has_attributes(Arbiter.setup, "cfg"),
    "sys._getframe": lambda: callable(getattr(sys, "_getframe", None)),
})


def serving_config() -> tuple[Any, bool] | None:
    """While gunicorn loads the app: its settings (``Config``), and whether this process
    speaks for the server (the master with ``--preload``, else the first worker it booted).
    None outside gunicorn, or when the frames do not say."""
    if not WORKER_COUNT:
        return None
    frame: Any = sys._getframe(1)
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, Worker):
                return owner.cfg, int(getattr(owner, "age", 1)) == 1
            if isinstance(owner, Arbiter):
                return owner.cfg, True
            frame = frame.f_back
    finally:
        del frame
    return None


# ---------------------------------------------------------------------- the worker classes
# (common_api.gunicorn_worker names them for gunicorn's worker_class setting)

def _prior_knowledge_check() -> Callable[[Any, Any], bool] | None:
    try:
        from gunicorn.http2 import negotiation
    except ImportError:  # gunicorn before HTTP/2 support
        return None
    check: Callable[[Any, Any], bool] | None = getattr(negotiation, "prior_knowledge_allowed",
                                                       None)
    return check


_PRIOR_KNOWLEDGE = _prior_knowledge_check()


_BEFORE_APP_LOAD: list[Callable[[], None]] = []


def before_app_load(action: Callable[[], None]) -> None:
    """Run ``action`` in gunicorn's master before it loads the app, when these workers
    serve (the preset's state directory is prepared so, ``common_api.gunicorn``)."""
    if action not in _BEFORE_APP_LOAD:
        _BEFORE_APP_LOAD.append(action)


class PlainErrorGthreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, its errors in plain text, and the preset's state
    directory prepared before the app loads."""

    @classmethod
    def setup(cls) -> None:
        """Gunicorn calls this in the master before it loads the app (``--preload`` too):
        each action given to ``before_app_load`` runs here."""
        for action in tuple(_BEFORE_APP_LOAD):
            action()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> Any:
        if PLAIN_ERRORS:
            client = PlainErrorSocket(client)
        return super().handle_error(req, client, addr, exc)


class PlainErrorThreadWorker(PlainErrorGthreadWorker):
    """...and request heads read in the event loop, where gunicorn is 27+."""

    #: whether this gunicorn's internals are the ones the head reading was built for
    reads_heads = SLOW_CLIENTS

    #: seconds a client has to send a complete request head, from the first wait for it
    header_timeout = 15.0

    @classmethod
    def setup(cls) -> None:
        """In the master, before the app loads: say so when this gunicorn is older than
        the head reading's internals (the worker then serves as gunicorn's gthread)."""
        _say_gthread_handling("common_api.gunicorn_worker.PlainErrorThreadWorker")
        super().setup()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # connections waiting for a complete head, in order of their deadline
        self._heads: dict[Any, float] = {}
        cfg = self.cfg
        field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        fields = cfg.limit_request_fields if cfg.limit_request_fields > 0 else 32768
        line = cfg.limit_request_line if cfg.limit_request_line > 0 else 1024 * 1024
        # past this the parser refuses the head anyway: let it answer with its own error
        self._max_head = line + fields * (field_size + 2) + 4 + 2

    # ------------------------------------------------------------------ the event loop

    def _reads_head_in_loop(self, conn: Any) -> bool:
        if not self.reads_heads or self.cfg.is_ssl or getattr(conn, "is_http2", False):
            return False
        return not (_PRIOR_KNOWLEDGE is not None and not getattr(conn, "initialized", False)
                    and _PRIOR_KNOWLEDGE(self.cfg, conn.client))

    def enqueue_req(self, conn: Any) -> None:
        """Hand ``conn`` to the pool once its next request head is complete."""
        if not self.alive or not self._reads_head_in_loop(conn):
            super().enqueue_req(conn)
            return
        head = bytearray()
        parser = getattr(conn, "parser", None)
        if parser is not None and parser.unreader.buf.getvalue():
            head += parser.unreader.take_buffered()  # pipelined: read ahead by the last one
        conn.common_api_head = head
        # usually the head is there already (a kept-alive connection that turned readable,
        # a client that wrote right after connecting): no trip through the poller then
        received = HEAD_END in head or self._receive(conn)
        if received is None:
            return  # the client closed: so did we
        if HEAD_END in head:
            super().enqueue_req(conn)
            return
        self._heads[conn] = time.monotonic() + self.header_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _receive(self, conn: Any) -> bool | None:
        """Add what the socket holds to the head: True if something came, False if nothing
        was there yet, None if the client closed (the connection is closed then)."""
        try:
            data = conn.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:  # the client closed (or failed) before sending a whole head
            self._drop_head(conn)
            return None
        conn.common_api_head += data
        return True

    def _on_head_readable(self, conn: Any, _sock: Any) -> None:
        head = conn.common_api_head
        start = max(0, len(head) - 3)
        if not self._receive(conn):
            return
        if HEAD_END in head[start:] or len(head) > self._max_head:
            self._forget_head(conn)
            conn.data_ready = True
            super().enqueue_req(conn)

    def _forget_head(self, conn: Any) -> None:
        self._heads.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop_head(self, conn: Any, answer: bytes = b"") -> None:
        self._forget_head(conn)
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def _expire_heads(self) -> None:
        now = time.monotonic()
        for conn, deadline in list(self._heads.items()):
            if self.alive and deadline > now:
                break
            partial_head = bool(conn.common_api_head)
            self._drop_head(conn, plain_error(
                408, "Request Timeout",
                f"request head not complete within {self.header_timeout:g} s")
                if partial_head else b"")

    def murder_keepalived(self, *args: Any, **kwargs: Any) -> Any:
        # called on every turn of gunicorn's loop (and while stopping)
        result = super().murder_keepalived(*args, **kwargs)
        if self.reads_heads:
            self._expire_heads()
        return result

    # ------------------------------------------------------------------ the pool thread

    def handle(self, conn: Any) -> Any:
        head = conn.__dict__.pop("common_api_head", None)
        if head is not None:
            conn.init()
            conn.parser.unreader.unread(bytes(head))
            conn.data_ready = True
        return super().handle(conn)
