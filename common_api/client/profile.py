"""The ``profile`` and ``memory`` client commands: a window of a running component.

``common-api profile URL -o flame.svg`` picks the format from the file name
(``.svg``: the flame graph, ``.speedscope.json``: speedscope's format, ``.json``: the
structured form, anything else: folded stacks); without ``-o`` the folded stacks go to
stdout. While the window runs, a progress line is shown on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from common_api.client.http import Client, Reply, Unreachable, UsageError
from common_api.client.options import collect_urls, format_seconds, read_token

COMMANDS = ("profile", "memory")
ANSWER_MARGIN = 30.0  # seconds allowed beyond the window for the answer to come back


def format_for(path: str | None, explicit: str | None) -> str:
    """The ``format`` to ask for: explicit, else from ``-o``'s name, else folded stacks."""
    if explicit is not None:
        return explicit
    name = (path or "").lower()
    if name.endswith(".svg"):
        return "svg"
    if name.endswith(".speedscope.json") or name.endswith(".speedscope"):
        return "speedscope"
    if name.endswith(".json"):
        return "json"
    return "collapsed"


def add_commands(commands: argparse._SubParsersAction[Any],
                 client_options: Callable[[float, str | None], argparse.ArgumentParser],
                 epilog: str) -> None:
    profile = commands.add_parser(
        "profile", parents=[client_options(10.0, None)], epilog=epilog,
        help="a sampling CPU profile of a component (GET /profile)",
        description="Sample a component's Python threads for S seconds and print the folded "
                    "stacks, or write them with -o (format from the file name: flame.svg, "
                    "profile.speedscope.json, profile.json, stacks.txt).")
    profile.add_argument("url", metavar="URL")
    profile.add_argument("--seconds", type=float, default=10.0, metavar="S",
                         help="length of the window (default: 10)")
    profile.add_argument("--last", type=float, default=None, metavar="S",
                         help="instead of a window: the last S seconds from the history every "
                              "worker keeps (answers at once)")
    profile.add_argument("--hz", type=int, default=None, metavar="N",
                         help="samples per second (default: the server's, 100)")
    profile.add_argument("--name", metavar="X", help="only threads whose name contains X")
    profile.add_argument("--no-idle", action="store_true",
                         help="drop samples of threads that are waiting")
    profile.add_argument("--all-workers", action="store_true",
                         help="every worker of the server over the same window")
    profile.add_argument("-o", "--output", metavar="FILE", help="write the profile to FILE")
    profile.add_argument("--format", choices=("collapsed", "speedscope", "svg", "json"),
                         help="the format, instead of guessing it from -o")

    memory = commands.add_parser(
        "memory", parents=[client_options(10.0, "print the server's JSON report")],
        epilog=epilog, help="what grew in a component's memory over a window (GET /memory)",
        description="Trace a component's allocations for S seconds and print the sites that "
                    "grew most, by size and by count, with the RSS before and after.")
    memory.add_argument("url", metavar="URL")
    memory.add_argument("--seconds", type=float, default=10.0, metavar="S",
                        help="length of the window (default: 10)")
    memory.add_argument("--top", type=int, default=None, metavar="N",
                        help="sites in each ranking (default: the server's, 25)")
    memory.add_argument("--group", choices=("lineno", "traceback", "filename"),
                        help="what a site is (default: lineno)")
    memory.add_argument("--all-workers", action="store_true",
                        help="every worker of the server over the same window")


class WindowProgress:
    """``profiling: 3/10 s`` rewritten in place on a terminal while a window runs."""

    def __init__(self, stream: TextIO, what: str, seconds: float) -> None:
        self._stream = stream
        self._what = what
        self._seconds = seconds
        isatty = getattr(stream, "isatty", None)
        self.enabled = callable(isatty) and bool(isatty())
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def __enter__(self) -> WindowProgress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="common-api-progress")
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(0.25):
            elapsed = time.monotonic() - started
            line = (f"{self._what}: {min(elapsed, self._seconds):.0f}/{self._seconds:g} s"
                    if elapsed < self._seconds else f"{self._what}: waiting for the answer")
            self._width = max(self._width, len(line))
            self._stream.write("\r" + line.ljust(self._width))
            self._stream.flush()


def _window(args: argparse.Namespace, err: TextIO, path: str, params: dict[str, str]
            ) -> tuple[str, Reply | None]:
    if getattr(args, "last", None) is not None:
        return _recorded(args, err, path, params)
    if not 0 < args.seconds < float("inf"):
        raise UsageError(f"invalid --seconds {args.seconds:g} (more than zero)")
    if args.timeout <= 0:
        raise UsageError(f"invalid timeout {args.timeout:g} (seconds, more than zero)")
    url = collect_urls([args.url], None)[0]
    client = Client(read_token(args.token_file), max(args.timeout, args.seconds + ANSWER_MARGIN))
    params = {"seconds": format_seconds(args.seconds), **params}
    if args.all_workers:
        params["scope"] = "all"
    try:
        with WindowProgress(err, args.command, args.seconds):
            return url, client.get(url, path, params)
    except Unreachable as error:
        err.write(f"common-api {args.command}: {url}: {error}\n")
        return url, None


def _recorded(args: argparse.Namespace, err: TextIO, path: str, params: dict[str, str]
              ) -> tuple[str, Reply | None]:
    """The last ``--last`` seconds of the history: no window to wait for."""
    if not 0 < args.last < float("inf"):
        raise UsageError(f"invalid --last {args.last:g} (seconds, more than zero)")
    if args.timeout <= 0:
        raise UsageError(f"invalid timeout {args.timeout:g} (seconds, more than zero)")
    url = collect_urls([args.url], None)[0]
    params = {"last": format_seconds(args.last), **params}
    if args.all_workers:
        params["scope"] = "all"
    try:
        return url, Client(read_token(args.token_file), args.timeout).get(url, path, params)
    except Unreachable as error:
        err.write(f"common-api {args.command}: {url}: {error}\n")
        return url, None


def _failed(command: str, url: str, reply: Reply, err: TextIO) -> int:
    err.write(f"common-api {command}: {url}: HTTP {reply.status}: {reply.message()}\n")
    return 1


def cmd_profile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    fmt = format_for(args.output, args.format)
    params = {"format": fmt}
    if args.hz is not None:
        params["hz"] = str(args.hz)
    if args.name is not None:
        params["name"] = args.name
    if args.no_idle:
        params["idle"] = "false"
    url, reply = _window(args, err, "/profile", params)
    if reply is None:
        return 1
    if not reply.ok:
        return _failed(args.command, url, reply, err)
    summary = (f"{reply.headers.get('x-profile-samples', '?')} samples over "
               f"{reply.headers.get('x-profile-duration-seconds', '?')} s at "
               f"{reply.headers.get('x-profile-rate-hz', '?')} Hz")
    missing = reply.headers.get("x-profile-missing-workers")
    if missing:
        err.write(f"common-api profile: workers that took no part: {missing}\n")
    if args.output is None:
        out.write(reply.text)
        return 0
    try:
        Path(args.output).write_bytes(reply.body)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
    err.write(f"wrote {args.output} ({fmt}): {summary}\n")
    return 0


def cmd_memory(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    params: dict[str, str] = {"format": "json" if args.json else "text"}
    if args.top is not None:
        params["top"] = str(args.top)
    if args.group is not None:
        params["group"] = args.group
    url, reply = _window(args, err, "/memory", params)
    if reply is None:
        return 1
    if not reply.ok:
        return _failed(args.command, url, reply, err)
    out.write(reply.text if reply.text.endswith("\n") else reply.text + "\n")
    return 0


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``profile`` or ``memory``; ``UsageError`` propagates (exit 2)."""
    return (cmd_profile if args.command == "profile" else cmd_memory)(args, out, err)
