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

# the classes live beside the gunicorn internals they rely on (common_api.compat.gunicorn)
from common_api.compat.gunicorn import (
    PlainErrorGthreadWorker,
    PlainErrorThreadWorker,
    plain_error,
)

__all__ = ["PlainErrorGthreadWorker", "PlainErrorThreadWorker", "plain_error"]
