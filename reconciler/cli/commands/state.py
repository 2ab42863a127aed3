"""``reconciler state ...``: the ledgers on their git branch (docs/gitops.md)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli import options
from reconciler.cli.common import EXIT_OK, annotated
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import inventory, state_branch

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    state = commands.add_parser(
        "state",
        help="the ledgers: list and show what is managed; pull, push and sign their git branch",
        description=(
            "What the ledgers hold: 'list' the managed trunks and their SIDs, 'show' one, "
            "'path' print where each ledger is (all read locally). Ledgers can live on a git "
            "branch of their own (default: reconciler-state), at the same paths as in the "
            "working tree, so applies work under a protected main and concurrent runs never "
            "lose each other's: 'pull' copies them into the working tree; 'push' commits them "
            "onto the branch, compare-and-swap (it retries on the new tip when another run "
            "pushed first); 'sign' vouches once for a branch made before signing."
        ),
    )
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    for name, words, run, grammar in ACTIONS:
        grammar(options.action(actions, name, words, run))


def _accounts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account", action="append", metavar="NAME", help="only these accounts (repeatable)"
    )


def _branch(parser: argparse.ArgumentParser, *, writes: bool) -> None:
    """Where the branch is, and who may write it."""
    parser.add_argument(
        "--branch", default="reconciler-state", help="the ledger branch (default: %(default)s)"
    )
    parser.add_argument("--remote", default="origin", help="git remote (default: %(default)s)")
    options.state_guard(parser, writes=writes)


def _inventory(parser: argparse.ArgumentParser) -> None:
    """``list`` and ``show``: what the ledgers hold, read locally."""
    options.path(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="the output (default: %(default)s)",
    )
    _accounts(parser)


def _path(path: argparse.ArgumentParser) -> None:
    options.path(path)
    _accounts(path)


def _show(show: argparse.ArgumentParser) -> None:
    show.add_argument("trunk", metavar="TRUNK", help="the trunk's name")
    _inventory(show)


def _pull(pull: argparse.ArgumentParser) -> None:
    options.path(pull)
    _accounts(pull)
    options.shard_option(pull)
    _branch(pull, writes=False)
    pull.add_argument(
        "--force",
        action="store_true",
        help="replace local ledgers that differ from the branch's (not yet pushed)",
    )


def _push(push: argparse.ArgumentParser) -> None:
    options.path(push)
    _accounts(push)
    options.shard_option(push)
    _branch(push, writes=True)
    push.add_argument(
        "--message",
        default="reconciler: ledger after apply",
        help="the commit message (default: %(default)s)",
    )
    push.add_argument(
        "--applied",
        metavar="COMMIT",
        help="also record that the manifests at COMMIT were applied (read by the "
        "apply workflow to know which merged pull requests a run carries)",
    )
    push.add_argument(
        "--checked",
        action="store_true",
        help="push drift's records of when each trunk was checked, not the ledgers (an "
        "account without a record, which no drift job checked, is left as the branch has it)",
    )
    push.add_argument(
        "--from",
        dest="source",
        metavar="DIR",
        help="read the ledgers from DIR, laid out as the repository is (an apply "
        "job's artifact), instead of the working tree",
    )


def _sign(sign: argparse.ArgumentParser) -> None:
    options.path(sign)
    _branch(sign, writes=True)
    sign.add_argument(
        "--tip",
        required=True,
        metavar="COMMIT",
        help="the branch's tip you checked (its SHA, 7 characters or more): the "
        "signature vouches for it, and is refused if the branch moved since",
    )


def _moved(moved: Iterable[state_branch.Moved]) -> None:
    for item in moved:
        print(f"ledger of {item.account} ({item.path}): {item.outcome}")


def run_pull(args: argparse.Namespace) -> int:
    moved = state_branch.pull(
        annotated(load(args.path), args),
        accounts=args.account or [],
        shard=args.shard,
        environ=environment(),
        branch=args.branch,
        remote=args.remote,
        force=args.force,
        guard=options.guard(args),
    )
    _moved(moved)
    return EXIT_OK


def run_push(args: argparse.Namespace) -> int:
    moved = state_branch.push(
        annotated(load(args.path), args),
        accounts=args.account or [],
        shard=args.shard,
        environ=environment(),
        message=args.message,
        applied=args.applied,
        source=Path(args.source) if args.source else None,
        checked=args.checked,
        branch=args.branch,
        remote=args.remote,
        guard=options.guard(args),
    )
    _moved(moved)
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    moved = state_branch.sign(
        load(args.path),
        environ=environment(),
        tip=args.tip,
        branch=args.branch,
        remote=args.remote,
        guard=options.guard(args),
    )
    _moved(moved)
    print(f"{args.remote}/{args.branch}: signed; every later push builds on it")
    return EXIT_OK


def run_path(args: argparse.Namespace) -> int:
    for path in state_branch.paths(load(args.path), accounts=args.account or []):
        print(path)
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    found = inventory.rows(load(args.path), accounts=args.account or [])
    if args.format == "json":
        print(json.dumps([row.document() for row in found], indent=2))
        return EXIT_OK
    if not found:
        print("No trunks are managed yet: apply, or import existing ones.")
        return EXIT_OK
    width = max(len(f"{row.account}/{row.trunk}") for row in found)
    for row in found:
        where = f"{row.account}/{row.trunk}".ljust(width)
        protect = "  protected" if row.protect else ""
        print(f"{where}  {row.sid or '(no SID yet)':<28}  {row.status}{protect}")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    document = inventory.show(load(args.path), args.trunk, accounts=args.account or [])
    if args.format == "json":
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(f"{document['account']}/{document['trunk']}: {document['status']}")
    for key in ("sid", "dial", "protect", "domain_name", "alias"):
        if document.get(key) is not None:
            print(f"  {key}: {document[key]}")
    for number in document.get("phone_numbers", []):
        print(f"  DID {number['number']} (mode {number['mode']})")
    for ip in document.get("whitelisted_ips", []):
        print(f"  whitelisted IP {ip}")
    for uri in document.get("destination_uris", []):
        print(f"  destination {uri['uri']} (priority {uri['priority']}, weight {uri['weight']})")
    for username, version in sorted(document["credentials"].items()):
        print(f"  credential {username} (password_version {version})")
    if document.get("partner"):
        print(f"  partner {document['partner']}")
    for kind, held in document["partner_objects"].items():
        print(f"  {held['partner']} {kind.replace('_', ' ')} {held['id']}")
    if document["status"] != "applied":
        print("  (values from the manifests: not all of them are applied yet; see `plan`)")
    return EXIT_OK


ACTIONS: tuple[tuple[str, str, options.Run, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("pull", "copy the accounts' ledgers from the branch into the working tree", run_pull, _pull),
    (
        "push",
        "commit the accounts' ledgers onto the branch (compare-and-swap), signed with "
        "RECONCILER_STATE_KEY when the repository lists who may sign it",
        run_push,
        _push,
    ),
    (
        "sign",
        "vouch for the branch as it is with a commit signed by the state key "
        "(RECONCILER_STATE_KEY), once, when turning signing on for a branch made before",
        run_sign,
        _sign,
    ),
    ("path", "print where each account's ledger is, one path a line", run_path, _path),
    (
        "list",
        "list the managed trunks and their SIDs (what Connect applets dial)",
        run_list,
        _inventory,
    ),
    (
        "show",
        "show one trunk: its SID, protect, alias and password versions from the ledger; its "
        "DIDs, IPs and destinations as the manifests declare them",
        run_show,
        _show,
    ),
)
"""Each action: its name, its help (and description), its run, and its options."""


__all__ = ["register", "run_list", "run_path", "run_pull", "run_push", "run_show", "run_sign"]
