"""``reconciler import``: bring existing trunks under management."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import sandbox
from reconciler.cli import options
from reconciler.cli.common import EXIT_OK, run
from reconciler.errors import ConfigError
from reconciler.manifests.load import Manifests, load
from reconciler.manifests.problems import plural
from reconciler.manifests.secrets import environment
from reconciler.pipeline import Options, import_trunks
from reconciler.pipeline.adopting import adopt_livekit

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    importer = commands.add_parser(
        "import",
        help="bring existing trunks under management: write manifests and ledger entries",
        description=(
            "Read existing trunks and write one manifest file per trunk (credentials get "
            "${ENV} placeholders and password_version 1) plus their ledger entries, so a plan "
            "right after is empty but for the passwords to set. Profile minimal cannot read "
            "trunk names: give them as --trunk-sid SID=NAME."
        ),
    )
    options.path(importer, "manifest directory, which must declare the account")
    importer.add_argument("--account", required=True, metavar="NAME", help="the declared account")
    importer.add_argument(
        "--trunk-sid", action="append", metavar="SID[=NAME]", help="a trunk to import (repeatable)"
    )
    importer.add_argument(
        "--all", action="store_true", help="every live trunk not yet managed (profile full)"
    )
    importer.add_argument(
        "--livekit",
        action="store_true",
        help="record the LiveKit objects declared trunks already have (found by the metadata "
        "this tool writes or the name exotel-<trunk>); writes only the ledger",
    )
    importer.add_argument(
        "--livekit-id",
        action="append",
        metavar="ID=TRUNK",
        help="a LiveKit trunk or dispatch rule (ST_..., SDR_...) to record as TRUNK's "
        "(repeatable; implies --livekit)",
    )
    importer.add_argument("--into", metavar="DIR", help="where to write the files (default: PATH)")
    importer.add_argument(
        "--force", action="store_true", help="overwrite existing files and ledger entries"
    )
    importer.add_argument(
        "--rate-limit",
        type=sandbox.non_negative(int),
        default=None,
        metavar="N",
        help="API requests per minute (default: the account's rate_limit; 0: no limit)",
    )
    importer.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    if args.livekit or args.livekit_id:
        return _run_livekit(args, manifests)
    if not args.trunk_sid and not args.all:
        raise ConfigError(
            "name the trunks to import: --trunk-sid SID (repeatable), or --all; or --livekit"
        )
    root = Path(args.path)
    folder = Path(args.into) if args.into else (root if root.is_dir() else root.parent)
    imported = run(
        import_trunks(
            manifests,
            account=args.account,
            targets=args.trunk_sid or [],
            everything=args.all,
            folder=folder,
            environ=environment(),
            options=Options(per_minute=args.rate_limit),
            force=args.force,
        )
    )
    if not imported:
        print(f"Nothing to import: every live trunk of account {args.account} is managed.")
        return EXIT_OK
    for trunk in imported:
        if trunk.recorded_only:
            print(f"recorded trunk {trunk.name} ({trunk.sid}), declared in {trunk.file}")
        else:
            print(f"imported trunk {trunk.name} ({trunk.sid}) -> {trunk.file}")
    passwords = [variable for trunk in imported for variable in trunk.passwords]
    print(f"\nThe ledger records {plural(len(imported), 'imported trunk')} by SID.")
    if passwords:
        print(
            "Exotel never returns SIP passwords, so the next plan shows each credential as "
            "'password unknown to the ledger' and apply sets it from these variables (set "
            "them first, as CI secrets too):"
        )
        print("".join(f"  {variable}\n" for variable in passwords), end="")
    else:
        print("A plan now should show no changes.")
    return EXIT_OK


def _run_livekit(args: argparse.Namespace, manifests: Manifests) -> int:
    if args.trunk_sid or args.all:
        raise ConfigError("import Exotel's trunks and LiveKit's objects in two runs")
    adopted = run(
        adopt_livekit(
            manifests,
            account=args.account,
            ids=args.livekit_id or [],
            environ=environment(),
            options=Options(per_minute=args.rate_limit),
            force=args.force,
        )
    )
    if not adopted:
        print(
            f"Nothing new to record: LiveKit lists no object of account {args.account}'s "
            "trunks that its ledger does not hold already."
        )
        return EXIT_OK
    for item in adopted:
        print(f"recorded LiveKit {item.what} {item.id} on {item.partner} as trunk {item.trunk}'s")
    print(
        f"\nThe ledger records {plural(len(adopted), 'LiveKit object')} by ID. The next plan "
        "shows every field that differs from the manifests as a change, and each outbound "
        "trunk's password as one to set (LiveKit's is unknown to the ledger)."
    )
    return EXIT_OK


__all__ = ["register", "run_import"]
