"""``reconciler check``: prove that the trunks' destinations answer SIP."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reconciler.checking import report as checks
from reconciler.cli import github, options, progress
from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, annotated, on_github, run
from reconciler.limits import open_files
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import checking

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    check = commands.add_parser(
        "check",
        help="prove that the trunks' destinations answer SIP (DNS, TCP, TLS, OPTIONS)",
        description=(
            "Probe every destination URI of the chosen trunks from here, in the order Exotel "
            "tries them: the name resolves, the port accepts TCP, TLS verifies (host name, "
            "expiry: a warning within 21 days), and a SIP OPTIONS gets a final answer. With "
            "--invite, also place a test call to one of each trunk's DIDs. A LiveKit partner "
            "answers OPTIONS with 200 whatever its trunks say (livekit/sip issue 764), so for "
            "its trunks only --invite tests anything: the call is sent as Exotel sends it, and "
            "LiveKit's answer is explained (no trunk for the number, no dispatch rule, no "
            "agent, digest demanded, codecs). Calls nothing at Exotel. Exit 0 when every "
            "destination is up, 2 when problems or warnings were found, 1 when the check "
            "could not run."
        ),
    )
    options.path(check)
    check.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="the output; markdown is the health issue's body (default: text)",
    )
    check.add_argument(
        "--account", action="append", metavar="NAME", help="only this account (repeatable)"
    )
    check.add_argument(
        "--trunk", action="append", metavar="NAME", help="only this trunk (repeatable)"
    )
    options.probing(check, invite=True)
    check.add_argument(
        "--invite",
        action="store_true",
        help="also send an INVITE to the trunk's first DID, offering PCMA and PCMU, then hang "
        "up (CANCEL, or ACK and BYE); the only real test of a LiveKit partner's trunk. "
        "CAUTION: this rings a real bot or agent",
    )
    options.github(check)
    check.set_defaults(run=run_check, unfinished="nothing was checked")


def run_check(args: argparse.Namespace) -> int:
    manifests = annotated(load(args.path), args)
    probe = options.probe(args)
    accounts = args.account or []
    for entry in checking.unused_resolves(manifests, accounts=accounts, options=probe):
        print(
            f"reconciler: warning: --resolve {entry} matches no destination checked",
            file=sys.stderr,
        )
    with progress.counter("checking destinations") as shown:
        probe = dataclasses.replace(
            probe,
            concurrency=open_files(probe.concurrency, spare=64),  # 64: its own files
            on_start=shown.start,
            on_result=lambda _: shown.tick(),
        )
        reports = run(checking.check(manifests, accounts=accounts, options=probe))
    now = datetime.now(UTC)
    if args.format == "json":
        print(checks.json_text(reports, now), end="")
    elif args.format == "markdown":
        print(on_github(checks.markdown(reports), args), end="")
    else:
        print(checks.text(reports), end="")
    if github.enabled(args.github, environment()):
        github.summary(on_github(checks.markdown(reports), args))
        github.outputs({"healthy": str(checks.healthy(reports)).lower()})
    return EXIT_OK if checks.healthy(reports) else EXIT_CHANGES


__all__ = ["register", "run_check"]
