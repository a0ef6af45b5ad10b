"""Command line: run a command against a test database, or print a database's URL.

    python -m aiopool.testing run -- CMD ARGS...
    python -m aiopool.testing url

``run`` finds or starts a server (see :func:`find_database`), gives its URL to
the command as ``AIOPOOL_URL`` and ``AIOPOOL_TEST_URL``, stops what it started
and exits with the command's exit code. ``url`` only reports a server that
outlives this process (``AIOPOOL_TEST_URL`` or the local one). Our own messages
go to stderr, so the command's output stays its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from ._server import DatabaseNotFound, _find, find_database, redact

PROG = "python -m aiopool.testing"
DESCRIPTION = "Run a command against a test database, or print a database's URL."


def _say(message: str) -> None:
    sys.stderr.write(f"aiopool.testing: {message}\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is tried")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run CMD with AIOPOOL_URL set to a test database")
    run.add_argument("--no-private", action="store_true", help="never start a private mariadbd")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    sub.add_parser("url", help="print the URL of an already running test database")
    return parser


def _exit_code(returncode: int) -> int:
    # A child killed by a signal reports -N; shells report 128+N.
    return 128 - returncode if returncode < 0 else returncode


def _run_child(command: Sequence[str], url: str) -> int:
    env = {**os.environ, "AIOPOOL_URL": url, "AIOPOOL_TEST_URL": url}
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        _say(f"cannot run {command[0]!r}: {exc}")
        return 127
    with proc:

        def forward(signum: int, frame: FrameType | None) -> None:
            proc.send_signal(signum)

        # A SIGTERM to us must reach the child and still let us stop the server.
        previous = signal.signal(signal.SIGTERM, forward)
        try:
            try:
                return _exit_code(proc.wait())
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the child too; let it finish its exit.
                return _exit_code(proc.wait())
        finally:
            signal.signal(signal.SIGTERM, previous)


def _cmd_run(command: list[str], *, allow_private: bool) -> int:
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _say(f"nothing to run: {PROG} run -- CMD ARGS...")
        return 2
    try:
        handle = find_database(allow_private=allow_private)
    except DatabaseNotFound as exc:
        _say(str(exc))
        return 1
    with handle:
        _say(f"using the {handle.source} database at {redact(handle.url)}")
        return _run_child(command, handle.url)


def _cmd_url() -> int:
    try:
        # A container or private server would die with us: its URL would be useless.
        handle = _find(allow_private=False, allow_containers=False)
    except DatabaseNotFound as exc:
        _say(f"{exc}\n(`{PROG} url` reports only servers that keep running; "
             f"use `{PROG} run -- CMD` to start one for a command)")  # fmt: skip
        return 1
    with handle:
        sys.stdout.write(handle.url + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m aiopool.testing``; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="aiopool.testing: %(message)s",
    )
    if args.action == "run":
        return _cmd_run(list(args.command), allow_private=not args.no_private)
    return _cmd_url()
