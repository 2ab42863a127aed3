"""``reconciler drift``: look for changes made outside the reconciler since the last apply."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reconciler import render
from reconciler.cli import github, options
from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, annotated, on_github, run
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import Options, drifting
from reconciler.pipeline.accounts import known_trunks

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    drift = commands.add_parser(
        "drift",
        help="look for changes made outside the reconciler since the last apply",
        description=(
            "Read live state and compare it with the last apply. Exit 0 when nothing drifted, "
            "2 when something did (the report names each trunk and field), 1 on error or when "
            "a trunk could not be read. Manifest changes not yet applied are listed apart."
        ),
    )
    options.api(
        drift, account="check only this account (repeatable)", formats=("text", "markdown", "json")
    )
    drift.add_argument(
        "--budget",
        type=int,
        metavar="CALLS",
        help="API calls each account may spend on this run: the trunks checked least "
        "recently go first, and successive runs sweep the account (default: check all)",
    )
    drift.set_defaults(run=run_drift)


def run_drift(args: argparse.Namespace) -> int:
    manifests = annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    choices = Options(
        per_minute=args.rate_limit,
        tolerant=True,
        trunks=frozenset(args.trunk or ()),
        shard=args.shard,
    )
    now = datetime.now(UTC)
    plan, coverage = run(
        drifting.drift(
            manifests,
            accounts=args.account or [],
            environ=environment(),
            options=choices,
            budget=args.budget,
            now=now,
        )
    )
    lines = [item.line(now) for item in coverage]
    earlier = [line for item in coverage for line in item.earlier]
    partial = any(item.checked < item.total for item in coverage)
    report = render.drift(plan, args.format, lines, earlier, partial=partial)
    print(on_github(report, args) if args.format == "markdown" else report, end="")
    drifted, _, unreadable = render.drift_parts(plan)
    # Drift of earlier runs stands until checked again; a trunk made by hand is drift too.
    drift_found = bool(drifted or earlier or render.unmanaged(plan))
    if github.enabled(args.github, environment()):
        markdown = render.drift(plan, "markdown", lines, earlier, partial=partial)
        github.summary(on_github(markdown, args))
        github.outputs({"drift": str(drift_found).lower(), "checksum": plan.checksum})
    if drift_found:
        return EXIT_CHANGES
    return EXIT_ERROR if unreadable else EXIT_OK


__all__ = ["register", "run_drift"]
