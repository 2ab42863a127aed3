"""``reconciler validate``: check manifests without calling any API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from reconciler import render
from reconciler.cli import github, options
from reconciler.cli.common import EXIT_ERROR, EXIT_OK, print_annotations
from reconciler.manifests.load import Manifests
from reconciler.manifests.problems import plural
from reconciler.manifests.secrets import environment
from reconciler.pipeline import validating
from reconciler.pipeline.accounts import shard_of

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
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
        nargs="*",
        default=[options.DEFAULT_PATH],
        metavar="PATH",
        help="a manifest folder, or manifest files, checked with the folder whose accounts "
        f"they name (default: {options.DEFAULT_PATH})",
    )
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="the output (default: text)"
    )
    validate.add_argument(
        "--shards",
        type=options.shard_count,
        default=None,
        metavar="N",
        help="say which of N shards hold accounts; with --github, also output 'shards' (a "
        "JSON list of their numbers, for a workflow's matrix of --shard I/N jobs) and "
        "'shard_count': N",
    )
    options.github(validate)
    validate.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    manifests = validating.validate(args.path)
    if args.format == "json":
        document = {
            "format_version": 1,
            "valid": not manifests.errors,
            "root": manifests.root,
            "files": list(manifests.files),
            "skipped": [{"path": i.path, "reason": i.reason} for i in manifests.skipped],
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
        for item in manifests.skipped:
            if item.reason != "ledger":
                print(f"{item.path}: skipped: {item.reason}")
        print(_summary(manifests))
    held = None
    if args.shards is not None:
        held = sorted({shard_of(name, args.shards) for name in manifests.accounts})
        print(
            f"{plural(len(manifests.accounts), 'account')} in {len(held)} of "
            f"{args.shards} shards: {', '.join(map(str, held)) or 'none'}",
            file=sys.stderr if args.format == "json" else sys.stdout,
        )
    if github.enabled(args.github, environment()):
        github.summary(_markdown(manifests))
        found = {"accounts": json.dumps(sorted(manifests.accounts))}
        if held is not None:
            found |= {"shards": json.dumps(held), "shard_count": str(args.shards)}
        if args.shards is None and len(manifests.accounts) > options.MAX_SHARDS:
            print(  # apply.yml's matrix: a job per account, and GitHub runs at most 256
                f"::warning::{len(manifests.accounts)} accounts: apply.yml runs a job per "
                f"account and a GitHub matrix holds at most {options.MAX_SHARDS} jobs "
                "(docs/scaling.md)"
            )
        github.outputs(found)
        print_annotations(manifests)
    return EXIT_ERROR if manifests.errors else EXIT_OK


def _summary(manifests: Manifests) -> str:
    errors, warnings = len(manifests.errors), len(manifests.warnings)
    scope = (
        f"{plural(len(manifests.files), 'file')}, {plural(len(manifests.accounts), 'account')}, "
        f"{plural(len(manifests.trunks), 'trunk')}"
    )
    ledgers = sum(item.reason == "ledger" for item in manifests.skipped)
    others = len(manifests.skipped) - ledgers
    left = [f"{plural(others, 'file')} skipped"] if others else []
    left += [f"{plural(ledgers, 'ledger file')} (for plan and apply)"] if ledgers else []
    scope += f" ({', '.join(left)})" if left else ""
    verdict = "invalid" if errors else "valid"
    counts = [plural(n, word) for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{manifests.root}: {scope}: {verdict}" + (f" ({', '.join(counts)})" if counts else "")


def _markdown(manifests: Manifests) -> str:
    lines = [f"### reconciler validate: {render.escape(_summary(manifests))}", ""]
    if manifests.problems:
        lines += ["| Where | Severity | Field | Problem |", "|---|---|---|---|"]
        for problem in manifests.problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            cells = (where, str(problem.severity), problem.path or "", problem.message)
            lines.append("| " + " | ".join(render.escape(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["register", "run_validate"]
