"""The grammar's shared parts: the parser, and option groups more than one command has.

Each group is added to a parser and, where it needs it, read back in one place, so a
command composes its options from these and never copies one. Each command's own options
are in its module (``cli.commands``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from reconciler import sandbox
from reconciler.errors import ConfigError
from reconciler.exotel.gate import DEFAULT_PER_MINUTE
from reconciler.pipeline import checking
from reconciler.pipeline.state_branch import Guard

DEFAULT_PATH = "manifests"
Run = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """Usage errors exit 1 ("error"), never 2, which means "changes or drift present": a
    typo in CI must not read as drift."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


if TYPE_CHECKING:  # generic to type checkers only
    Commands = argparse._SubParsersAction[Parser]  # the subcommands


def action(
    actions: Commands, name: str, words: str, run: Run, *, ending: str = ""
) -> argparse.ArgumentParser:
    """One action of a command that has several (``state pull``, ``ci merge``): its help is
    ``words``, its description the same as a sentence."""
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=words, description=words[0].upper() + words[1:] + ending
    )
    parser.set_defaults(run=run)
    return parser


def path(parser: argparse.ArgumentParser, what: str = "manifest file or directory") -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"{what} (default: {DEFAULT_PATH})",
    )


def api(parser: argparse.ArgumentParser, *, account: str, formats: tuple[str, ...]) -> None:
    """PATH, --format, --account, --rate-limit and --github, as every API command has them."""
    path(parser)
    parser.add_argument(
        "--format", choices=formats, default=formats[0], help="the output (default: %(default)s)"
    )
    parser.add_argument("--account", action="append", metavar="NAME", help=account)
    parser.add_argument(
        "--trunk",
        action="append",
        metavar="NAME",
        help="only this trunk (repeatable), as Terraform's -target: the rest of the account "
        "is not looked at, and the output says so",
    )
    shard_option(parser)
    parser.add_argument(
        "--rate-limit",
        type=sandbox.non_negative(int),
        default=None,
        metavar="N",
        help="API requests per minute per account (default: the account's rate_limit, "
        f"{DEFAULT_PER_MINUTE} unless set; 0: no limit, for a sandbox started with --rate-limit 0)",
    )
    github(parser)


MAX_SHARDS = 256  # as many jobs as one GitHub Actions matrix may hold


def shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        type=shard,
        default=None,
        metavar="I/N",
        help="only the accounts of shard I of N (a stable split by account name, so each "
        f"account keeps its shard as others come and go; N up to {MAX_SHARDS}), to spread "
        "many accounts over N jobs; a shard may hold none",
    )


def shard(text: str) -> tuple[int, int]:
    """``--shard I/N``: shard I (1-based) of N."""
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: write I/N, like 2/8")
    i, n = int(index), int(count)
    if not 1 <= n <= MAX_SHARDS or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(
            f"{text!r}: I from 1 to N, and N from 1 to {MAX_SHARDS}, like 2/8"
        )
    return i, n


def shard_count(text: str) -> int:
    """``--shards N``: how many shards, 1 to 256."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of shards from 1 to {MAX_SHARDS}")
    return int(text)


def github(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--github",
        action="store_true",
        help="GitHub Actions extras (job summary, outputs, annotations); on by default when "
        "GITHUB_ACTIONS=true",
    )


def max_delete(parser: argparse.ArgumentParser) -> None:
    """The safety rail on deletions, as plan and apply have it."""
    parser.add_argument(
        "--max-delete",
        type=sandbox.non_negative(int),
        metavar="N",
        help="deletions above which apply refuses (default: 30%% of managed objects, "
        "when there are 10 or more)",
    )


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    parse = sandbox.non_negative(kind)

    def positive(text: str) -> int | float:
        value = parse(text)
        if math.isinf(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if not math.isfinite(value) or value == 0:
            raise argparse.ArgumentTypeError(f"must be a number greater than zero, got {text}")
        return value

    return positive


def probing(parser: argparse.ArgumentParser, *, invite: bool = False) -> None:
    """The options of a SIP probe, shared by check and trace --probe (``invite``: the
    command also places test calls)."""
    also = ", and separately to answer an INVITE" if invite else ""
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=5.0,
        metavar="S",
        help="seconds each destination gets to resolve, connect, shake hands and answer "
        f"OPTIONS{also} (default: %(default)s)",
    )
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:PORT:ADDRESS",
        help="connect to ADDRESS for HOST:PORT, as curl does: check a new SBC before its DNS "
        "changes (repeatable)",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="verify TLS against the CA certificates in FILE (PEM) instead of the system's",
    )
    parser.add_argument(
        "--concurrency",
        type=positive(int),
        default=1000,
        metavar="N",
        help="destinations probed at once; each distinct destination is probed once, "
        "wherever it is used (default: %(default)s)",
    )


def probe(args: argparse.Namespace) -> checking.CheckOptions:
    """What ``probing``'s options say (and check's --invite and --trunk)."""
    if args.ca is not None and not Path(args.ca).is_file():
        raise ConfigError(f"--ca {args.ca}: no such file (give a PEM file of CA certificates)")
    return checking.CheckOptions(
        timeout=args.timeout,
        resolve=checking.parse_resolve(args.resolve),
        ca=args.ca,
        invite=getattr(args, "invite", False),
        concurrency=args.concurrency,
        trunks=frozenset(getattr(args, "trunk", None) or ()),
    )


def state_guard(parser: argparse.ArgumentParser, *, writes: bool) -> None:
    """The options that say who may write the state branch (docs/gitops.md)."""
    parser.add_argument(
        "--signers",
        metavar="FILE",
        help="the public keys that may sign the branch, in git's allowed-signers format "
        "(default: .github/reconciler-state.signers, when it exists)",
    )
    parser.add_argument(
        "--require-signed",
        action="store_true",
        help="refuse to work without a signers file (the workflows pass it)",
    )
    if writes:
        parser.add_argument(
            "--known-hosts",
            metavar="FILE",
            help="the only SSH host keys to trust when pushing to an SSH remote with the "
            "state key (reconciler ci known-hosts writes GitHub's)",
        )


def guard(args: argparse.Namespace) -> Guard:
    """What ``state_guard``'s options say."""
    known = getattr(args, "known_hosts", None)
    return Guard(
        signers=args.signers,
        required=args.require_signed,
        known_hosts=Path(known) if known else None,
    )


def verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the subcommand too (``reconciler drift -v``), as before it."""
    for each in parser._actions:
        if isinstance(each, argparse._SubParsersAction):
            for sub in each.choices.values():
                with contextlib.suppress(argparse.ArgumentError):
                    sub.add_argument(
                        "-v",
                        "--verbose",
                        action="count",
                        default=argparse.SUPPRESS,
                        help="log more on stderr (-vv: every API request the command makes)",
                    )
                verbose_everywhere(sub)


__all__ = [
    "DEFAULT_PATH",
    "Parser",
    "Run",
    "action",
    "api",
    "github",
    "guard",
    "max_delete",
    "path",
    "positive",
    "probe",
    "probing",
    "state_guard",
    "verbose_everywhere",
]
