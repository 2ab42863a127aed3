"""``reconciler call``: place a call to a DID through Exotel in a box and show its ladder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli import options
from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, moment, run
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import calling
from reconciler.render import calls as rendered

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0, to 3600")
    return value


def register(commands: Commands) -> None:
    call = commands.add_parser(
        "call",
        help="place a call to a DID through the sandbox and show its ladder",
        description=(
            "Place a PSTN call to DID through a reconciler sandbox started with --sip-port "
            "(the account's base_url or EXOTEL_BASE_URL), as Exotel would carry it after "
            "apply: the DID's trunk and mode, its flow (Dynamic URL, handoff) when one is "
            "set, the trunk's destinations in order with failover; then print what happened "
            "step by step. Refuses against Exotel's own API: see trace and check --invite. "
            "Exit 0 when the call was answered and completed, 2 when it was busy, unanswered "
            "or failed."
        ),
    )
    call.add_argument("did", metavar="DID", help="the number called, like +918040264208")
    options.path(call)
    call.add_argument(
        "--from",
        dest="caller",
        default="+919876543210",
        metavar="NUMBER",
        help="the caller's number, in E.164 (default: %(default)s)",
    )
    call.add_argument(
        "--at",
        metavar="TIME",
        help="the call's start as its webhooks are told (Created, StartTime, CurrentTime; "
        "2026-12-02T19:30, Asia/Kolkata unless an offset is given); reconciler serve decides "
        "by its own clock, or its own --at",
    )
    call.add_argument(
        "--hangup-after",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="the caller hangs up this long after an answer (default: %(default)s)",
    )
    call.add_argument(
        "--play",
        type=Path,
        metavar="WAV",
        help="what the caller says: a WAV file (8000 Hz, mono, 16-bit) on the sandbox's "
        "machine, looped; default: a 1004 Hz test tone",
    )
    call.add_argument(
        "--account",
        action="append",
        metavar="NAME",
        help="the DID's account, when it is not declared on a trunk (or declared in several)",
    )
    call.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="the output; markdown draws the ladder in Mermaid (default: %(default)s)",
    )
    call.set_defaults(run=run_call, unfinished="no call was placed")


def run_call(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    record = run(
        calling.call(
            manifests,
            args.did,
            caller=args.caller,
            accounts=args.account or [],
            environ=environment(),
            at=moment(args.at, "--at") if args.at else None,
            hangup_after=args.hangup_after,
            play=str(args.play.resolve()) if args.play else None,
        )
    )
    if args.format == "json":
        print(json.dumps(record, indent=2))
    elif args.format == "markdown":
        print(rendered.markdown(record), end="")
    else:
        print(rendered.text(record), end="")
    return EXIT_OK if record.get("status") == "completed" else EXIT_CHANGES


__all__ = ["register", "run_call"]
