"""``reconciler schema``: print the JSON Schema of the manifest language."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconciler.cli.common import EXIT_OK
from reconciler.manifests import schema

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "schema",
        help="print the JSON Schema of the manifest language",
        description=(
            "Print the JSON Schema of manifest files (editors use the copy in "
            "schema/manifest.schema.json), or with --format markdown the field reference."
        ),
    )
    parser.add_argument(
        "--format",
        choices=("json", "markdown"),
        default="json",
        help="json: the JSON Schema; markdown: the field reference (default: json)",
    )
    parser.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        print(schema.field_reference(), end="")
    else:
        print(schema.json_schema_text(), end="")
    return EXIT_OK


__all__ = ["register", "run_schema"]
