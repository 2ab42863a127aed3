"""``reconciler plan``: show what apply would change, without changing anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import render
from reconciler.cli import github, options, saved_plans
from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, annotated, run
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import Options, make_plan
from reconciler.pipeline.accounts import known_trunks
from reconciler.plan.actions import Plan

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="show what apply would change, without changing anything",
        description=(
            "Read live state from Exotel (only GETs), diff it against the manifests and print "
            "an ordered plan: + create, ~ update, - delete, -/+ replace, ! manual step. "
            "Exit 0 (or 2 with --detailed-exitcode when there are changes), 1 on error."
        ),
    )
    options.api(
        plan,
        account="plan only this account (repeatable; default: every declared account)",
        formats=("text", "markdown", "json"),
    )
    plan.add_argument("--out", metavar="FILE", help="also write the plan as JSON to FILE")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan has changes, 0 when it has none",
    )
    plan.add_argument(
        "--refresh",
        choices=("all", "changed"),
        default="all",
        help="all: read every managed trunk (default); changed: only trunks whose manifests "
        "changed since the last apply, plus new and removed ones (cheaper, but blind to drift "
        "on the others)",
    )
    options.max_delete(plan)
    plan.set_defaults(run=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    manifests = annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    choices = Options(
        refresh=args.refresh,
        max_delete=args.max_delete,
        per_minute=args.rate_limit,
        trunks=frozenset(args.trunk or ()),
        shard=args.shard,
    )
    plan = run(
        make_plan(manifests, accounts=args.account or [], environ=environment(), options=choices)
    )
    _write(plan, args)
    if github.enabled(args.github, environment()):
        github.summary(_markdown(plan, args))
        github.outputs(
            {
                "has_changes": str(plan.has_changes).lower(),
                "checksum": plan.checksum,
                "plan_path": args.out or "",
            }
        )
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _write(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        print(render.json_text(plan), end="")
    elif args.format == "markdown":
        print(_markdown(plan, args), end="")
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in environment()
        print(render.text(plan, colour=colour), end="")
    if args.out:
        saved_plans.write(plan.document(), Path(args.out), environment())


def _markdown(plan: Plan, args: argparse.Namespace) -> str:
    """A plan as a pull-request comment: on GitHub, with its commit, run and time."""
    environ = environment()
    if not github.enabled(args.github, environ):
        return render.markdown(plan)
    return render.markdown(plan, footer=github.footer(environ), elsewhere=github.elsewhere(environ))


__all__ = ["register", "run_plan"]
