"""Option groups more than one command shares, added to a parser and read back in one place."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.pipeline.state_branch import Guard


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
