"""The gunicorn worker ``common_api.gunicorn_conf`` uses: gthread, with plain-text errors.

Gunicorn answers malformed or oversized requests itself (414 for a request line over
``limit_request_line``, 400 for a bad header, ...) before any app code runs, with an HTML
page. Components answer in plain text or JSON, never HTML, so this worker writes those
answers as ``text/plain``. The swap happens only inside the worker processes it runs, and
only if gunicorn still has the function it replaces; otherwise gunicorn's page stays.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def write_plain_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = (f"{reason}: {mesg}" if mesg else reason).encode("latin-1", "replace")
    head = (f"HTTP/1.1 {status_int} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Cache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1", "replace")
    util.write_nonblock(sock, head + body)


class PlainErrorThreadWorker(ThreadWorker):  # type: ignore[misc]
    @classmethod
    def setup(cls) -> None:
        """Gunicorn calls this in the master before it loads the app (``--preload`` too):
        where the preset's state directory is prepared (``common_api.gunicorn``)."""
        from common_api.gunicorn import prepare_if_wanted

        prepare_if_wanted()

    def init_process(self) -> Any:
        if callable(getattr(util, "write_error", None)):
            util.write_error = write_plain_error
        return super().init_process()
