"""The gunicorn workers ``common_api.gunicorn_conf`` uses: gthread, with plain-text errors,
and (on gunicorn 27+) request heads read in the event loop, so slow clients cannot take the
thread pool.

Plain text: gunicorn answers malformed or oversized requests itself (414 for a request
line over ``limit_request_line``, 400 for a bad header, ...) before any app code runs,
with an HTML page. Components answer in plain text or JSON, never HTML, so these workers
hand gunicorn's error answer a socket that writes it as ``text/plain``
(``common_api.compat.gunicorn``): only these workers' connections, nothing replaced for
the process, and only if the running gunicorn still writes the page it expects.

Heads in the loop (``PlainErrorThreadWorker``, gunicorn 27+): gunicorn's gthread worker
hands a connection to a pool thread as soon as it is readable, and the thread then blocks
reading the rest of the request head. A client that sends its headers a byte a second
holds a thread for as long as it likes; a few of them take every thread, and health
probes time out. This worker keeps each connection in its event loop (non-blocking, no
thread) until the complete head (``\\r\\n\\r\\n``) has arrived, on a new connection, on a
kept-alive one, and for a pipelined request whose head is not yet whole, then hands the
head to the pool, where gunicorn parses and serves it as usual. A head not complete
within ``header_timeout`` seconds of its first wait is answered 408 (plain text) and
closed; a connection that sent nothing is closed silently. The number of connections a
worker holds is still bounded by gunicorn's ``worker_connections``. TLS connections (the
handshake needs a thread) and HTTP/2 prior-knowledge connections are left to gunicorn as
they are. Request bodies are still read by the pool thread. It relies on gthread's
internals as gunicorn 27 has them: on an older gunicorn (or one whose internals changed)
it keeps gunicorn's own connection handling, as ``PlainErrorGthreadWorker`` does, and the
preset picks that class there (``compat.gunicorn.preset_worker_class``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from common_api.compat import gunicorn as compat
from common_api.compat.gunicorn import PlainErrorSocket, plain_error


def _prior_knowledge_check() -> Callable[[Any, Any], bool] | None:
    try:
        from gunicorn.http2 import negotiation
    except ImportError:  # gunicorn before HTTP/2 support
        return None
    check: Callable[[Any, Any], bool] | None = getattr(negotiation, "prior_knowledge_allowed",
                                                       None)
    return check


_PRIOR_KNOWLEDGE = _prior_knowledge_check()

HEAD_END = b"\r\n\r\n"
RECV_BYTES = 65536


__all__ = ["PlainErrorGthreadWorker", "PlainErrorThreadWorker", "plain_error"]


class PlainErrorGthreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, its errors in plain text, and the preset's state
    directory prepared before the app loads."""

    @classmethod
    def setup(cls) -> None:
        """Gunicorn calls this in the master before it loads the app (``--preload`` too):
        where the preset's state directory is prepared (``common_api.gunicorn``)."""
        from common_api.gunicorn import prepare_if_wanted

        prepare_if_wanted()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> Any:
        if compat.PLAIN_ERRORS:
            client = PlainErrorSocket(client)
        return super().handle_error(req, client, addr, exc)


class PlainErrorThreadWorker(PlainErrorGthreadWorker):
    """...and request heads read in the event loop, where gunicorn is 27+."""

    #: whether this gunicorn's internals are the ones the head reading was built for
    reads_heads = compat.SLOW_CLIENTS

    #: seconds a client has to send a complete request head, from the first wait for it
    header_timeout = 15.0

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
