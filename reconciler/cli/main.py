"""The command line: argv -> a command -> output and an exit code.

``build_parser`` registers every command of ``cli.commands.COMMANDS``; ``main`` parses,
sets up logging, runs the command, and maps what it raised to a message on stderr and an
exit code (docs/architecture.md, "Exit codes"): 0 success, 1 error, 2 changes or drift
present, 3 refused. Each command's module prints its own output.

A command may set, beside ``run``, ``chatty`` (a callable: log at INFO without -v) and
``unfinished`` (what did not happen when its manifests have problems).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.cli import github, logs, options
from reconciler.cli.commands import COMMANDS
from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_REFUSED, on_github
from reconciler.errors import ApiError, AuthFailed, ManifestError, ReconcilerError, Refused
from reconciler.manifests.problems import Severity, plural
from reconciler.manifests.secrets import environment


def build_parser() -> argparse.ArgumentParser:
    parser = _program()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands)
    options.verbose_everywhere(parser)
    return parser


def _program() -> options.Parser:
    parser = options.Parser(
        prog="reconciler",
        description=(
            "Declarative, GitOps-style reconciler for Exotel vSIP trunking. "
            "Exit codes: 0 success, 1 error, 2 changes or drift present, 3 refused."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more on stderr: -v retries and progress, -vv every API request",
    )
    return parser


def _report(error: ReconcilerError, args: argparse.Namespace) -> None:
    """A failure as a message on stderr: never a traceback for what a user can fix."""
    if isinstance(error, ManifestError):
        for problem in error.problems:
            print(problem.text(), file=sys.stderr)
        outcome = getattr(args, "unfinished", "nothing was sent to Exotel")
        print(f"{plural(len(error.problems), 'problem')}: {outcome}", file=sys.stderr)
        return
    if isinstance(error, AuthFailed) and error.call.partner:
        print(
            f"reconciler: partner {error.call.partner}: LiveKit refused the API key and secret "
            f"(HTTP {error.call.status}): check the partner's api_key/api_secret variables, "
            "that the key has the SIP admin grant, and its url (LIVEKIT_URL overrides it)",
            file=sys.stderr,
        )
        return
    if isinstance(error, AuthFailed):
        print(
            f"reconciler: account {error.call.account}: Exotel refused the API key and token "
            "(HTTP 401): check the account's api_key/api_token variables, its sid, and its "
            "region (a key for one region fails on the other)",
            file=sys.stderr,
        )
        return
    prefix = "reconciler: "
    if isinstance(error, ApiError):
        prefix += "LiveKit API: " if error.call.partner else "Exotel API: "
    print(f"{prefix}{error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chatty = getattr(args, "chatty", None)
    quiet = logging.INFO if chatty is not None and chatty() else logging.WARNING
    logs.configure(level={0: quiet, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
    try:
        result: int = args.run(args)
    except Refused as error:
        print(f"reconciler: refused: {error}", file=sys.stderr)
        if github.enabled(getattr(args, "github", False), environment()):
            refused = f"### reconciler {args.command}: refused (exit 3)\n\n{error}\n"
            github.summary(on_github(refused, args))
        return EXIT_REFUSED
    except ReconcilerError as error:
        _report(error, args)
        return EXIT_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (a CI cancel)
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return result


__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_REFUSED",
    "Severity",
    "build_parser",
    "main",
]
