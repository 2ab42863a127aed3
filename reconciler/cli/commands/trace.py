"""``reconciler trace``: explain where a call to a DID goes."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from reconciler.checking import report as checks
from reconciler.cli import options
from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, moment, run
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import Options, tracing

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    trace = commands.add_parser(
        "trace",
        help="explain where a call to a DID goes: trunk, route rule, destinations",
        description=(
            "Explain an inbound call to DID from the manifests, the ledger and, when the "
            "account's API key and token are set, live state (at most two GETs): the trunk "
            "the DID is on and its SID, pstn or flow, which route rule matches and why, the "
            "Dynamic URL's and the handoff's answers at that time, and the destinations in "
            "the order Exotel tries them. --probe checks each destination, as check does."
        ),
    )
    trace.add_argument("did", metavar="DID", help="the number called, like +918040264208")
    options.path(trace)
    trace.add_argument(
        "--format", choices=("text", "json"), default="text", help="the output (default: text)"
    )
    trace.add_argument("--from", dest="caller", metavar="CALLER", help="the caller's number")
    trace.add_argument(
        "--at",
        metavar="TIME",
        help="the time of the call (2026-12-02T19:30, Asia/Kolkata unless an offset is "
        "given; default: now)",
    )
    trace.add_argument("--probe", action="store_true", help="also check each destination")
    trace.add_argument(
        "--offline", action="store_true", help="do not read live state, even with credentials"
    )
    options.probing(trace)
    trace.set_defaults(run=run_trace, unfinished="nothing was traced")


def run_trace(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    at = moment(args.at, "--at") if args.at else None
    question = tracing.Question(
        args.did, caller=args.caller, at=at, probe=args.probe, live=not args.offline
    )
    document = run(
        tracing.trace(
            manifests,
            question,
            environ=environment(),
            api=Options(per_minute=None),
            options=options.probe(args),
        )
    )
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        print(checks.trace_text(document), end="")
    probed = [item["probe"] for item in document["destinations"] if item["probe"] is not None]
    down = any(found["state"] != "up" for found in probed)
    return EXIT_CHANGES if down or document["drift"] else EXIT_OK


__all__ = ["register", "run_trace"]
