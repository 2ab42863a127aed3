"""The command line: argv -> the pipeline -> output and an exit code.

The only module that prints. Each subcommand parses its options, calls one function,
and maps the outcome to the exit codes of DESIGN.md section 7: 0 success, 1 error,
2 changes or drift present, 3 refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from reconciler import __version__, sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description=(
            "Declarative, GitOps-style reconciler for Exotel vSIP trunking. "
            "Exit codes: 0 success, 1 error, 2 changes or drift present, 3 refused."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sandbox_parser = commands.add_parser(
        "sandbox",
        help="serve a faithful emulator of Exotel's vSIP API on loopback",
        description=(
            "Serve Exotel's vSIP API with its envelopes, validation, "
            "pagination, rate limit and quirks, plus control endpoints under /_sandbox/ "
            "(reset, state, stats, faults). Prints 'listening on URL' when ready; "
            "stops on SIGINT or SIGTERM."
        ),
    )
    sandbox.add_arguments(sandbox_parser)
    sandbox_parser.set_defaults(run=sandbox.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result
