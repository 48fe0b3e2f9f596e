"""The ``common-api`` command: ``serve`` runs a component under real gunicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from common_api import __version__

DEMO_APP = "common_api.demo:app"
GUNICORN_CONF = "python:common_api.gunicorn_conf"
STATE_ENV = "COMMON_API_STATE_DIR"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="common-api",
                                     description="Operational endpoints for every component.")
    parser.add_argument("--version", action="version", version=f"common-api {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve an app (default: the bundled demo component) under gunicorn")
    serve.add_argument("--app", default=DEMO_APP, metavar="MODULE:APP",
                       help=f"the WSGI app to serve (default: {DEMO_APP})")
    serve.add_argument("--bind", default="127.0.0.1:7000", metavar="HOST:PORT",
                       help="address to listen on (default: 127.0.0.1:7000)")
    serve.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes (default: 2, or COMMON_API_WORKERS)")
    serve.add_argument("--threads", type=_positive_int, default=None,
                       help="threads per worker (default: 4, or COMMON_API_THREADS)")
    serve.add_argument("--preload", action="store_true",
                       help="load the app in the master before forking the workers")
    return parser


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    argv = ["common-api serve", "-c", GUNICORN_CONF, "--bind", args.bind]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.preload:
        argv.append("--preload")
    return [*argv, args.app]


def serve(args: argparse.Namespace) -> int:
    """Run gunicorn in this process with a fresh state directory, removed afterwards."""
    from gunicorn.app.wsgiapp import WSGIApplication

    state_dir = tempfile.mkdtemp(prefix="common-api-state-")
    os.environ[STATE_ENV] = state_dir
    sys.argv = gunicorn_argv(args)
    owner = os.getpid()
    try:
        WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="common-api serve").run()
    finally:
        # gunicorn's workers are forks of this frame: their exit unwinds through here too
        if os.getpid() == owner:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
