"""The command line: argv -> the pipeline -> output and an exit code.

The only module that prints. Each subcommand parses its options, calls one function,
and maps the outcome to the exit codes of DESIGN.md section 7: 0 success, 1 error,
2 changes or drift present, 3 refused. Output for machines goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from reconciler import __version__, logs, progress, render, sandbox, schema
from reconciler.actions import Plan
from reconciler.client import DEFAULT_PER_MINUTE
from reconciler.errors import (
    ApiError,
    AuthFailed,
    ConfigError,
    ManifestError,
    ReconcilerError,
    Refused,
)
from reconciler.load import Manifests, environment, load
from reconciler.pipeline import ApplyOptions, Options, apply, make_plan
from reconciler.problems import Severity, plural

DEFAULT_PATH = "manifests"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_REFUSED = 0, 1, 2, 3


def _summary(manifests: Manifests) -> str:
    errors, warnings = len(manifests.errors), len(manifests.warnings)
    scope = (
        f"{plural(len(manifests.files), 'file')}, {plural(len(manifests.accounts), 'account')}, "
        f"{plural(len(manifests.trunks), 'trunk')}"
    )
    verdict = "invalid" if errors else "valid"
    counts = [plural(n, word) for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{manifests.root}: {scope}: {verdict}" + (f" ({', '.join(counts)})" if counts else "")


def run_validate(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    if args.format == "json":
        document = {
            "format_version": 1,
            "valid": not manifests.errors,
            "root": manifests.root,
            "files": list(manifests.files),
            "accounts": sorted(manifests.accounts),
            "trunks": len(manifests.trunks),
            "errors": len(manifests.errors),
            "warnings": len(manifests.warnings),
            "problems": [problem.document() for problem in manifests.problems],
        }
        print(json.dumps(document, indent=2))
    else:
        for problem in manifests.problems:
            print(problem.text())
        print(_summary(manifests))
    return EXIT_ERROR if manifests.errors else EXIT_OK


def _write_plan(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        print(render.json_text(plan), end="")
    elif args.format == "markdown":
        print(render.markdown(plan), end="")
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in environment()
        print(render.text(plan, colour=colour), end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render.json_text(plan), encoding="utf-8")


def run_plan(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    options = Options(refresh=args.refresh, max_delete=args.max_delete, per_minute=args.rate_limit)
    plan = asyncio.run(
        make_plan(manifests, accounts=args.account or [], environ=environment(), options=options)
    )
    _write_plan(plan, args)
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


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


def run_apply(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    saved = None
    if args.plan:
        try:
            saved = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the saved plan {args.plan}: {exc}") from exc
    options = Options(max_delete=args.max_delete, per_minute=args.rate_limit)
    apply_options = ApplyOptions(force=args.force, saved_plan=saved, break_lock=args.break_lock)
    with progress.reporter() as on_outcome:

        def show(plan: Plan) -> None:
            colour = sys.stdout.isatty() and "NO_COLOR" not in environment()
            print(render.text(plan, colour=colour), end="", flush=True)
            on_outcome.begin(len(plan.actions))

        result = asyncio.run(
            apply(
                manifests, accounts=args.account or [], environ=environment(), options=options,
                apply_options=apply_options, confirm=lambda plan: _confirm(plan, args),
                on_outcome=on_outcome, on_plan=show,
            )
        )  # fmt: skip
    if not result.plan.has_changes:
        return EXIT_OK
    print()
    print(render.report(result, args.format), end="")
    return EXIT_OK if result.converged else EXIT_ERROR


def run_schema(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        print(schema.field_reference(), end="")
    else:
        print(schema.json_schema_text(), end="")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check manifests without calling any API",
        description=(
            "Load every *.yaml/*.yml under PATH and report every problem at once, with file, "
            "line, column and field path. Errors (exit 1) are what Exotel would refuse or what "
            "would break calls; warnings (exit 0) are allowed but probably not meant. Secrets "
            "must be ${ENV_VAR} references; they need not be set for validate."
        ),
    )
    validate.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"manifest file or directory (default: {DEFAULT_PATH})",
    )
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(run=run_validate)

    plan = commands.add_parser(
        "plan",
        help="show what apply would change, without changing anything",
        description=(
            "Read live state from Exotel (only GETs), diff it against the manifests and print "
            "an ordered plan: + create, ~ update, - delete, -/+ replace, ! manual step. "
            "Exit 0 (or 2 with --detailed-exitcode when there are changes), 1 on error."
        ),
    )
    plan.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"manifest file or directory (default: {DEFAULT_PATH})",
    )
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    plan.add_argument("--out", metavar="FILE", help="also write the plan as JSON to FILE")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan has changes, 0 when it has none",
    )
    plan.add_argument(
        "--account",
        action="append",
        metavar="NAME",
        help="plan only this account (repeatable; default: every declared account)",
    )
    plan.add_argument(
        "--refresh",
        choices=("all", "changed"),
        default="all",
        help="all: read every managed trunk (default); changed: only trunks whose manifests "
        "changed since the last apply, plus new and removed ones (cheaper, but blind to drift "
        "on the others)",
    )
    plan.add_argument(
        "--max-delete",
        type=int,
        metavar="N",
        help="deletions above which apply refuses "
        "(default: 30%% of managed objects, when there are 10 or more)",
    )
    plan.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_PER_MINUTE,
        metavar="N",
        help="API requests per minute per account (default: %(default)s, Exotel's limit; "
        "0: no limit, for a sandbox)",
    )
    plan.set_defaults(run=run_plan)

    apply_parser = commands.add_parser(
        "apply",
        help="make Exotel match the manifests: plan, confirm, execute, verify",
        description=(
            "Re-plan, then execute the plan in dependency order, saving the ledger after "
            "every change that matters and journaling every step; then re-read what was "
            "touched. Exit 0 when converged, 1 when anything failed or remains, 3 when "
            "refused (a stale --plan, a safety rail, no confirmation)."
        ),
    )
    apply_parser.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"manifest file or directory (default: {DEFAULT_PATH})",
    )
    apply_parser.add_argument(
        "--plan",
        metavar="FILE",
        help="apply only if re-planning gives this saved plan's checksum (from plan --out)",
    )
    apply_parser.add_argument(
        "--auto-approve", action="store_true", help="do not ask for confirmation"
    )
    apply_parser.add_argument(
        "--force",
        action="store_true",
        help="go on although a safety rail holds (empty manifests, too many deletions)",
    )
    apply_parser.add_argument(
        "--account", action="append", metavar="NAME", help="apply only this account (repeatable)"
    )
    apply_parser.add_argument(
        "--max-delete",
        type=int,
        metavar="N",
        help="deletions above which apply refuses (default: 30%% of managed objects, "
        "when there are 10 or more)",
    )
    apply_parser.add_argument(
        "--break-lock",
        action="store_true",
        help="remove a lock left by an apply that died on this host",
    )
    apply_parser.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="format of the final report",
    )
    apply_parser.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_PER_MINUTE,
        metavar="N",
        help="API requests per minute per account (default: %(default)s; 0: no limit)",
    )
    apply_parser.set_defaults(run=run_apply)

    schema_parser = commands.add_parser(
        "schema",
        help="print the JSON Schema of the manifest language",
        description=(
            "Print the JSON Schema of manifest files (editors use the copy in "
            "schema/manifest.schema.json), or with --format markdown the field reference."
        ),
    )
    schema_parser.add_argument("--format", choices=("json", "markdown"), default="json")
    schema_parser.set_defaults(run=run_schema)

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


def _report(error: ReconcilerError) -> None:
    """A failure as a message on stderr: never a traceback for what a user can fix."""
    if isinstance(error, ManifestError):
        for problem in error.problems:
            print(problem.text(), file=sys.stderr)
        print(
            f"{plural(len(error.problems), 'problem')}: nothing was sent to Exotel", file=sys.stderr
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
    prefix = "reconciler: Exotel API: " if isinstance(error, ApiError) else "reconciler: "
    print(f"{prefix}{error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = logging.INFO if args.command == "apply" and not sys.stderr.isatty() else logging.WARNING
    logs.configure(level={0: quiet, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
    try:
        result: int = args.run(args)
    except Refused as error:
        print(f"reconciler: refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except ReconcilerError as error:
        _report(error)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return result


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "Severity", "main"]
