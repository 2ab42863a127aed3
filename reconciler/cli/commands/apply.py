"""``reconciler apply``: make Exotel match the manifests: plan, confirm, execute, verify.

Whatever the outcome, apply says how it ended: in ``--report FILE`` (for a workflow to
comment with) and, with ``--format json``, as one JSON document on stdout, even when it
was refused or failed (the message is on stderr too, from ``cli.main``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import render, sandbox
from reconciler.cli import github, options, progress, saved_plans
from reconciler.cli.common import EXIT_ERROR, EXIT_OK, annotated, on_github, run, unwatched
from reconciler.errors import Interrupted, ReconcilerError, Refused
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import ApplyOptions, Options
from reconciler.pipeline import apply as applying
from reconciler.pipeline.accounts import known_trunks
from reconciler.plan.actions import ApplyResult, Plan

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    apply = commands.add_parser(
        "apply",
        help="make Exotel match the manifests: plan, confirm, execute, verify",
        description=(
            "Re-plan, then execute the plan in dependency order, saving the ledger after "
            "every change that matters and journaling every step; then re-read what was "
            "touched. Exit 0 when converged, 1 when anything failed or remains, 3 when "
            "refused (a stale --plan, a safety rail, no confirmation)."
        ),
    )
    options.api(
        apply,
        account="apply only this account (repeatable)",
        formats=("text", "markdown", "json"),
    )
    apply.add_argument(
        "--plan",
        action="append",
        metavar="FILE",
        help="a reviewed plan (from plan --out; repeatable): apply only if re-planning gives "
        "its checksum, or does only what the reviewed plans said (what is left after a "
        "partial apply, or several merged pull requests at once)",
    )
    apply.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--lock-timeout",
        type=sandbox.non_negative(float),
        default=0.0,
        metavar="S",
        help="wait up to S seconds for another apply of the same ledger to finish "
        "(default: fail at once, naming it)",
    )
    apply.add_argument(
        "--report",
        metavar="FILE",
        help="also write the outcome (applied, failed, refused, interrupted) as markdown to "
        "FILE, whatever it is: for a workflow to comment with",
    )
    apply.add_argument(
        "--force",
        action="store_true",
        help="go on although a safety rail holds (empty manifests, too many deletions)",
    )
    options.max_delete(apply)
    apply.add_argument(
        "--break-lock",
        action="store_true",
        help="remove a lock left by an apply that died on this host",
    )
    # apply logs each outcome when nobody watches its progress bar
    apply.set_defaults(run=run_apply, chatty=unwatched)


def run_apply(args: argparse.Namespace) -> int:
    try:
        result = _execute(args)
    except Refused as error:
        _outcome_file(args, "refused", f"### reconciler apply: refused (exit 3)\n\n{error}\n")
        _json_outcome(args, "refused", error)
        raise
    except ReconcilerError as error:
        status = "interrupted" if isinstance(error, Interrupted) else "failed"
        _outcome_file(args, status, f"### reconciler apply: {status} (exit 1)\n\n{error}\n")
        _json_outcome(args, status, error)
        raise
    return _finish(result, args)


def _execute(args: argparse.Namespace) -> ApplyResult:
    manifests = annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    saved = saved_plans.read(args.plan or [], environment())
    choices = Options(
        max_delete=args.max_delete,
        per_minute=args.rate_limit,
        trunks=frozenset(args.trunk or ()),
        shard=args.shard,
    )
    # Without a prompt, a signal drains the requests in flight; at the prompt, Ctrl-C must
    # still stop the question, so there only SIGTERM is caught (and cancels).
    prompts = not (args.auto_approve or saved)
    stopping = None if prompts else asyncio.Event()
    apply_options = ApplyOptions(
        force=args.force,
        saved_plans=tuple(saved),
        break_lock=args.break_lock,
        lock_timeout=args.lock_timeout,
        stopping=stopping,
    )
    with progress.reporter() as on_outcome:

        def show(plan: Plan) -> None:
            # With --format json, stdout holds the one JSON document: the plan goes to stderr.
            stream = sys.stderr if args.format == "json" else sys.stdout
            colour = stream.isatty() and "NO_COLOR" not in environment()
            print(render.text(plan, colour=colour), end="", flush=True, file=stream)
            on_outcome.begin(len(plan.actions))

        return run(
            applying(
                manifests,
                accounts=args.account or [],
                environ=environment(),
                options=choices,
                apply_options=apply_options,
                confirm=lambda plan: _confirm(plan, args),
                on_outcome=on_outcome,
                on_plan=show,
            ),
            stopping,
        )


def _confirm(plan: Plan, args: argparse.Namespace) -> bool:
    """Ask on a terminal; with --auto-approve, yes; with neither, refuse rather than guess."""
    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        raise Refused(
            "no terminal to confirm on: pass --auto-approve, or --plan FILE with a plan that "
            "was reviewed (nothing was applied)"
        )
    counts = render.summary(plan)
    answer = input(f"\nApply this plan to Exotel ({counts})? Only 'yes' is accepted: ")
    return answer.strip() == "yes"


def _finish(result: ApplyResult, args: argparse.Namespace) -> int:
    if github.enabled(args.github, environment()):
        github.summary(on_github(render.report(result, "markdown"), args))
        github.outputs(
            {
                "has_changes": str(result.plan.has_changes).lower(),
                "checksum": result.plan.checksum,
                "converged": str(result.converged).lower(),
            }
        )
    if not result.plan.has_changes:
        _outcome_file(args, "nothing", "Nothing to apply: live state matches the manifests.\n")
        if args.format == "json":
            print(render.report(result, "json"), end="")
        return EXIT_OK
    status = "applied" if result.converged else "not-converged"
    _outcome_file(args, status, render.report(result, "markdown"))
    if args.format != "json":
        print()
    report = render.report(result, args.format)
    print(on_github(report, args) if args.format == "markdown" else report, end="")
    return EXIT_OK if result.converged else EXIT_ERROR


def _outcome_file(args: argparse.Namespace, status: str, markdown: str) -> None:
    """``apply --report FILE``: the outcome as markdown, whatever it was, for a workflow to
    comment with. Its first line says which accounts and how it ended, for machines."""
    if args.report is None:
        return
    accounts = ",".join(args.account or []) or "all"
    head = f"<!-- reconciler-apply:{accounts}:{status} -->\n"
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + on_github(markdown, args), encoding="utf-8")


def _json_outcome(args: argparse.Namespace, status: str, error: Exception) -> None:
    """``apply --format json`` that did not finish still prints one JSON document on
    stdout, so a job that parses it learns how it ended (the message is on stderr too)."""
    if args.format != "json":
        return
    document = {"format_version": 1, "outcome": status, "converged": False, "error": str(error)}
    print(json.dumps(document, indent=2))


__all__ = ["register", "run_apply"]
