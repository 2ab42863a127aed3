"""``reconciler sandbox``: Exotel's vSIP API, emulated (``reconciler.sandbox``).

The emulator imports nothing from the reconciler, so its options and its run are its own;
this module only names the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler import sandbox

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "sandbox",
        help="serve a faithful emulator of Exotel's vSIP API on loopback",
        description=(
            "Serve Exotel's vSIP API with its envelopes, validation, pagination, rate limit and "
            "quirks, plus control endpoints under /_sandbox/ (reset, state, stats, faults). "
            "With --sip-port it also plays Exotel's SIP gateway and the PSTN: calls through "
            "what was applied (/_sandbox/calls, flows, apps, pstn; reconciler call), partners' "
            "outbound INVITEs, and the Calls API (docs/sandbox.md, 'Calls'). Prints 'listening "
            "on URL' when ready (then 'sip listening on ...'); stops on SIGINT or SIGTERM."
        ),
    )
    sandbox.add_arguments(parser)
    parser.set_defaults(run=sandbox.run)


__all__ = ["register"]
