"""The ``common-api`` command: ``serve`` runs a component under real gunicorn; ``status``,
``threads``, ``tasks``, ``loglevel``, ``reset-metrics`` and ``run`` ask running components (see
``common_api.client``).

Exit status: 0 on success, 1 when a component failed, is unhealthy or did not answer, 2 for
a usage error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from common_api import __version__

DEMO_APP = "common_api.demo:app"
GUNICORN_CONF = "python:common_api.gunicorn_conf"
CLIENT_EPILOG = ("The token comes from COMMON_API_TOKEN, or --token-file; it is never printed. "
                 "A URL may carry a prefix path (http://host:7000/ops); http:// is assumed "
                 "when no scheme is given.")


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line (and exit status 2) instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds more than zero, got {text!r}")
    return value


def _client_options(timeout: float, json_help: str | None) -> _Parser:
    """The options every client command shares (a parent parser)."""
    common = _Parser(add_help=False)
    common.add_argument("--timeout", type=_positive_seconds, default=timeout, metavar="S",
                        help=f"seconds to wait for each component (default: {timeout:g})")
    common.add_argument("--token-file", metavar="F",
                        help="read the bearer token from F (default: $COMMON_API_TOKEN)")
    if json_help is not None:
        common.add_argument("--json", action="store_true", help=json_help)
    return common


def add_client_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The subcommands that talk to running components."""
    status = commands.add_parser(
        "status", parents=[_client_options(5.0, "print a JSON array, one object per component")],
        help="health, unhealthy threads, workers and version of each component",
        description="Ask each component's /periodic-threads-health, all at once, and print one "
                    "row per component. Exit status 0 only if every component is healthy.",
        epilog=CLIENT_EPILOG)
    status.add_argument("urls", nargs="*", metavar="URL", help="a component's base URL")
    status.add_argument("--file", metavar="FILE",
                        help="read more URLs from FILE, one a line (# starts a comment)")

    threads = commands.add_parser(
        "threads", parents=[_client_options(30.0, "print the server's JSON dump")],
        help="a component's thread dump", epilog=CLIENT_EPILOG,
        description="Print a component's thread dump (GET /threads).")
    threads.add_argument("url", metavar="URL")
    threads.add_argument("--name", metavar="X",
                         help="only threads whose name contains X (any case)")
    threads.add_argument("--all-workers", action="store_true",
                         help="every worker of the server, not only the one that answers")
    threads.add_argument("--group", action="store_true",
                         help="threads with identical stacks shown once, with their count")

    tasks = commands.add_parser(
        "tasks", parents=[_client_options(30.0, "print the server's JSON listing")],
        help="what every asyncio task of a component is waiting on", epilog=CLIENT_EPILOG,
        description="Print every asyncio task of every event loop of a component, with the "
                    "coroutine chain it is suspended in and what it awaits (GET /tasks).")
    tasks.add_argument("url", metavar="URL")
    tasks.add_argument("--name", metavar="X", help="only tasks whose name contains X (any case)")
    tasks.add_argument("--all-workers", action="store_true",
                       help="every worker of the server, not only the one that answers")
    tasks.add_argument("--group", action="store_true",
                       help="tasks suspended at the same place shown once, with their count")

    loglevel = commands.add_parser(
        "loglevel", parents=[_client_options(10.0, "print the server's JSON answer")],
        help="list, get or set a component's logger levels", epilog=CLIENT_EPILOG,
        description="Without LOGGER, list every logger; with LOGGER, show its level; with "
                    "LEVEL, set it (in every worker), for DURATION only with --for.")
    loglevel.add_argument("url", metavar="URL")
    loglevel.add_argument("logger", nargs="?", metavar="LOGGER", help="a logger name ('root')")
    loglevel.add_argument("level", nargs="?", metavar="LEVEL", help="e.g. DEBUG, INFO, WARNING")
    loglevel.add_argument("--for", dest="duration", metavar="DURATION",
                          help="put the previous level back after DURATION "
                               "(seconds, or 30s, 5m, 2h)")

    reset = commands.add_parser(
        "reset-metrics", parents=[_client_options(10.0, "print a JSON array of results")],
        help="reset the metrics of each component (POST /metrics/reset)", epilog=CLIENT_EPILOG,
        description="Reset each component's metrics, all at once. Exit status 0 only if every "
                    "reset succeeded.")
    reset.add_argument("urls", nargs="*", metavar="URL", help="a component's base URL")
    reset.add_argument("--file", metavar="FILE",
                       help="read more URLs from FILE, one a line (# starts a comment)")

    run = commands.add_parser(
        "run", parents=[_client_options(60.0, None)], epilog=CLIENT_EPILOG,
        help="run a Python script in a component's sandbox (POST /run_script)",
        description="Upload SCRIPT to a component's sandbox and print its result. Exit status "
                    "1 when the script fails.")
    run.add_argument("url", metavar="URL")
    run.add_argument("script", metavar="SCRIPT.py", help="the script ('-' reads stdin)")

    from common_api.client import profile
    profile.add_commands(commands, _client_options, CLIENT_EPILOG)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="common-api",
                     description="Operational endpoints for every component.")
    parser.add_argument("--version", action="version", version=f"common-api {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve an app (default: the bundled demo component) under gunicorn")
    serve.add_argument("--app", default=DEMO_APP, metavar="MODULE:APP",
                       help=f"the WSGI app to serve (default: {DEMO_APP})")
    serve.add_argument("--bind", default=None, metavar="HOST:PORT",
                       help="address to listen on (default: 127.0.0.1:7000, or "
                            "COMMON_API_BIND)")
    serve.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes (default: 2, or COMMON_API_WORKERS)")
    serve.add_argument("--threads", type=_positive_int, default=None,
                       help="threads per worker (default: 4, or COMMON_API_THREADS)")
    serve.add_argument("--preload", action="store_true",
                       help="load the app in the master before forking the workers")
    add_client_commands(commands)
    return parser


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    argv = ["common-api serve", "-c", GUNICORN_CONF]
    if args.bind is not None:
        argv += ["--bind", args.bind]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.preload:
        argv.append("--preload")
    return [*argv, args.app]


def serve(args: argparse.Namespace) -> int:
    """Run gunicorn in this process with the preset ``common_api.gunicorn_conf``: it uses
    ``COMMON_API_STATE_DIR`` when set, else a fresh directory removed at exit."""
    from gunicorn.app.wsgiapp import WSGIApplication
    from gunicorn.errors import HaltServer

    sys.argv = gunicorn_argv(args)
    try:
        WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="common-api serve").run()
    except HaltServer as halt:
        # gunicorn has logged why (e.g. a worker's one-line configuration error); a second
        # worker failing while the master stops raises this again, with a traceback
        print(f"common-api serve: {halt.reason}", file=sys.stderr)
        return int(halt.exit_status) or 1
    return 0


def run_client(args: argparse.Namespace) -> int:
    """Run a client command; a usage error is one line on stderr and exit status 2."""
    from common_api.client import profile
    from common_api.client.commands import run_command
    from common_api.client.http import UsageError

    try:
        run = profile.run if args.command in profile.COMMANDS else run_command
        return run(args, sys.stdout, sys.stderr)
    except UsageError as error:
        print(f"common-api {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"common-api {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (| head): say nothing more, and let exit not fail on flush
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed
        if exit_.code is None:
            return 0
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command == "serve":
        return serve(args)
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
