"""The client commands: ``status``, ``threads``, ``tasks``, ``loglevel``, ``reset-metrics``,
``run``.

Each takes the parsed arguments and a :class:`Console` and returns the exit status:
0 when everything asked for succeeded, 1 when a component failed, was unhealthy or did
not answer, 2 for a usage error (raised as ``UsageError`` and reported by the caller).
Commands over many components ask them concurrently, each call with its own timeout, and
report them in the order given.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

from common_api.client import render, status
from common_api.client.http import Client, Reply, Unreachable, UsageError, encode_multipart
from common_api.client.options import (
    collect_urls,
    format_seconds,
    parse_duration,
    read_script,
    read_token,
)

MAX_PARALLEL = 32
T = TypeVar("T")


@dataclass(frozen=True)
class Console:
    """Where a command writes: results to ``out``, errors and progress to ``err``."""

    out: TextIO
    err: TextIO
    command: str

    def error(self, message: str) -> None:
        self.err.write(f"common-api {self.command}: {message}\n")


def fan_out(urls: Sequence[str], ask: Callable[[str], T], progress: render.Progress) -> list[T]:
    """``ask(url)`` for every URL at once; the answers in the order of ``urls``."""
    if not urls:
        return []
    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(urls)),
                              thread_name_prefix="common-api-client")
    try:
        futures: dict[Future[T], int] = {pool.submit(ask, url): i for i, url in enumerate(urls)}
        answers: dict[int, T] = {}
        for done, future in enumerate(as_completed(futures), start=1):
            answers[futures[future]] = future.result()
            progress.update(done)
    finally:
        progress.finish()
        pool.shutdown(wait=False, cancel_futures=True)
    return [answers[i] for i in range(len(urls))]


def make_client(args: argparse.Namespace) -> Client:
    if args.timeout <= 0:
        raise UsageError(f"invalid timeout {args.timeout:g} (seconds, more than zero)")
    return Client(read_token(args.token_file), args.timeout)


def _single(args: argparse.Namespace) -> tuple[Client, str]:
    client = make_client(args)
    return client, collect_urls([args.url], None)[0]


def _report(console: Console, url: str, reply: Reply, sent_token: bool,
            whole_body: bool = False) -> int:
    """Print a successful answer on stdout, or a failed one as one error on stderr."""
    if reply.ok:
        console.out.write(render.as_text(reply.text) if reply.body else "")
        return 0
    if whole_body and reply.text.strip() and not reply.is_html and \
            reply.status not in (401, 403):
        console.error(f"{url}: HTTP {reply.status}: {reply.text.strip()}")
    else:
        console.error(f"{url}: {reply.problem(sent_token)}")
    return 1


def _ask(console: Console, client: Client, url: str, call: Callable[[], Reply],
         whole_body: bool = False) -> int:
    try:
        reply = call()
    except Unreachable as error:
        console.error(f"{url}: {error}")
        return 1
    return _report(console, url, reply, client.has_token, whole_body)


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    client = make_client(args)
    urls = collect_urls(args.urls, args.file)
    rows = fan_out(urls, lambda url: status.check(client, url),
                   render.Progress(console.err, len(urls)))
    if args.json:
        console.out.write(render.to_json([row.to_dict() for row in rows]))
    else:
        console.out.write(status.status_table(rows))
    return 0 if all(row.health == status.HEALTHY for row in rows) else 1


def _dump_params(args: argparse.Namespace) -> dict[str, str]:
    """The query of ``threads`` and ``tasks``: --name, --all-workers, --group, --json."""
    params = {"name": args.name} if args.name is not None else {}
    if args.all_workers:
        params["scope"] = "all"
    if args.group:
        params["group"] = "true"
    if args.json:
        params["format"] = "json"
    return params


def cmd_threads(args: argparse.Namespace, console: Console) -> int:
    client, url = _single(args)
    params = _dump_params(args)
    return _ask(console, client, url, lambda: client.get(url, "/threads", params))


def cmd_tasks(args: argparse.Namespace, console: Console) -> int:
    client, url = _single(args)
    params = _dump_params(args)
    return _ask(console, client, url, lambda: client.get(url, "/tasks", params))


def cmd_loglevel(args: argparse.Namespace, console: Console) -> int:
    if args.duration is not None and args.level is None:
        raise UsageError("--for needs a LOGGER and a LEVEL")
    seconds = parse_duration(args.duration) if args.duration is not None else None
    client, url = _single(args)
    params: dict[str, str] = {}
    if args.logger is not None:
        params["logger_name"] = args.logger
    if args.level is not None:
        params["level"] = args.level
    if seconds is not None:
        params["duration"] = format_seconds(seconds)
        return _timed_level(console, client, url, params, args.json)
    if args.level is not None:
        return _ask(console, client, url, lambda: _set_level(client, url, params, args.json))
    if args.json:
        params["format"] = "json"
    return _ask(console, client, url, lambda: client.get(url, "/loglevel", params))


def _timed_level(console: Console, client: Client, url: str, params: dict[str, str],
                 as_json: bool) -> int:
    """Set a level for a while, and make sure the server did schedule the revert.

    A server without timed levels ignores ``duration`` and keeps the level for good: the
    JSON answer (its ``revert`` member) tells the two apart, so that case is an error.
    """
    try:
        reply = _set_level(client, url, params, as_json=True)
    except Unreachable as error:
        console.error(f"{url}: {error}")
        return 1
    if not reply.ok:
        return _report(console, url, reply, client.has_token)
    try:
        answer: Any = reply.json()
    except ValueError:
        answer = None
    revert = answer.get("revert") if isinstance(answer, dict) else None
    if not isinstance(revert, dict):
        console.error(f"{url}: the server set {params['logger_name']} to {params['level']} but "
                      "scheduled no revert (it does not support --for): the level stays until "
                      "changed")
        return 1
    if as_json:
        console.out.write(render.as_text(reply.text))
    else:
        seconds = float(revert.get("in_seconds", 0))
        until = (datetime.now().astimezone() + timedelta(seconds=seconds)).isoformat(
            timespec="seconds")
        console.out.write(
            f"Set {answer.get('logger_name')} level to {answer.get('level')} (including all "
            f"handlers) for {seconds:.0f} seconds, until {until}, then "
            f"{revert.get('level')}\n")
        late = answer.get("unacknowledged_workers") or []
        reasons = answer.get("unacknowledged_reasons") or {}
        if late:
            named = ", ".join(f"{pid} ({reasons.get(str(pid), 'no acknowledgement in time')})"
                              for pid in late)
            console.out.write(f"Not yet applied by worker(s) {named}; each applies it as "
                              "soon as it runs again\n")
    return 0


def _set_level(client: Client, url: str, params: dict[str, str], as_json: bool) -> Reply:
    """A level set as ``POST /loglevel`` with a form (a server older than POST answers
    405: then the seed's GET)."""
    body = urllib.parse.urlencode(params).encode("ascii")
    path = "/loglevel?format=json" if as_json else "/loglevel"
    reply = client.post(url, path, body, "application/x-www-form-urlencoded")
    if reply.status == 405:
        reply = client.get(url, "/loglevel", {**params, "format": "json"} if as_json else params)
    return reply


@dataclass(frozen=True)
class ResetRow:
    url: str
    ok: bool
    http_status: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "http_status": self.http_status,
                "message": self.message}


def _reset(client: Client, url: str) -> ResetRow:
    try:
        reply = client.post(url, "/metrics/reset")
    except Unreachable as error:
        return ResetRow(url, False, None, str(error))
    if reply.ok:
        return ResetRow(url, True, reply.status, reply.text.strip())
    return ResetRow(url, False, reply.status, reply.problem(client.has_token))


def cmd_reset_metrics(args: argparse.Namespace, console: Console) -> int:
    client = make_client(args)
    urls = collect_urls(args.urls, args.file)
    rows = fan_out(urls, lambda url: _reset(client, url), render.Progress(console.err, len(urls)))
    if args.json:
        console.out.write(render.to_json([row.to_dict() for row in rows]))
    else:
        cells = [[row.url, "ok" if row.ok else "FAILED", "" if row.ok else row.message]
                 for row in rows]
        console.out.write(render.table(("URL", "RESET", "REASON"), cells))
    return 0 if all(row.ok for row in rows) else 1


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.script == "-":
        source, filename = sys.stdin.buffer.read(), "stdin.py"
    else:
        source, filename = read_script(args.script), Path(args.script).name
    client, url = _single(args)
    body, content_type = encode_multipart("script", filename, source)
    try:
        reply = client.post(url, "/run_script", body, content_type)
    except Unreachable as error:
        console.error(f"{url}: {error}")
        return 1
    if reply.status == 404:
        console.error(f"{url}: /run_script is disabled on this component (its operator turns "
                      "it on with COMMON_API_SCRIPT_ENABLED=true)")
        return 1
    return _report(console, url, reply, client.has_token, whole_body=True)


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "status": cmd_status,
    "threads": cmd_threads,
    "tasks": cmd_tasks,
    "loglevel": cmd_loglevel,
    "reset-metrics": cmd_reset_metrics,
    "run": cmd_run,
}


def run_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the client command ``args.command``; ``UsageError`` propagates (exit 2)."""
    return COMMANDS[args.command](args, Console(out, err, args.command))
