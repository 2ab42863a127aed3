"""``reconciler graph``: draw the topology as a Mermaid flowchart."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconciler import diagram
from reconciler.cli import options
from reconciler.cli.common import EXIT_OK
from reconciler.manifests.load import load
from reconciler.pipeline import inventory

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    graph = commands.add_parser(
        "graph",
        help="draw the topology: DIDs, trunks, destinations and routes (Mermaid)",
        description=(
            "Print the declared topology as a Mermaid flowchart (GitHub renders it in "
            "markdown): each DID to its trunk (with its SID from the ledger), each trunk "
            "to its destinations (priority, weight), and each route's rules to the trunks "
            "they send calls to. Reads the manifests and ledgers only."
        ),
    )
    options.path(graph)
    graph.add_argument(
        "--format",
        choices=("mermaid", "markdown"),
        default="mermaid",
        help="mermaid: the flowchart alone; markdown: in a fenced block (default: %(default)s)",
    )
    graph.add_argument(
        "--account", action="append", metavar="NAME", help="only this account (repeatable)"
    )
    graph.set_defaults(run=run_graph)


def run_graph(args: argparse.Namespace) -> int:
    drawn = inventory.graph(load(args.path), accounts=args.account or [])
    print(diagram.fenced(drawn) if args.format == "markdown" else drawn, end="")
    return EXIT_OK


__all__ = ["register", "run_graph"]
