"""The command line: argv -> the pipeline -> output and an exit code.

The only module that prints. Each subcommand parses its options, calls one function,
and maps the outcome to the exit codes of DESIGN.md section 7: 0 success, 1 error,
2 changes or drift present, 3 refused. Output for machines goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from reconciler import __version__, sandbox, schema
from reconciler.load import Manifests, load
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return result


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "Severity", "main"]
