"""The emulated LiveKit project's SIP objects, and the rules LiveKit applies to them.

Pure data and checks, from livekit/protocol's ``livekit/sip.go`` (validation, updates)
and ``livekit/types.go`` (``ListUpdate``), and livekit/livekit's ``pkg/service/sip.go``
(what each RPC does with a missing object): docs/partners.md, "LiveKit's SIP API".
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from livekit.protocol import models, sip

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


STATUS = {  # Twirp's codes and their HTTP status (twitchtv/twirp, errors.go)
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "failed_precondition": 412,
    "internal": 500,
}


class TwirpError(Exception):
    """A Twirp error: its code (``invalid_argument``, ``not_found``, ...) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = STATUS.get(code, 500)


def new_id(prefix: str) -> str:
    """LiveKit's ids: ``ST_`` for trunks, ``SDR_`` for dispatch rules, then 12 letters."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def normalise(number: str) -> str:
    """As LiveKit compares numbers: spaces, dashes and brackets dropped, ``+`` added."""
    digits = re.sub(r"[\s\-()]", "", number)
    return digits if digits.startswith("+") else "+" + digits


def apply_list(current: list[str], change: models.ListUpdate) -> list[str]:
    """A ``ListUpdate``: ``clear`` alone; ``set`` without ``add`` or ``remove``; empty
    strings refused; ``remove`` before ``add``; ``add`` skips what is there."""
    given = [*change.set, *change.add, *change.remove]
    if any(not value for value in given):
        raise TwirpError("invalid_argument", "list update values must not be empty")
    if change.clear and (change.set or change.add or change.remove):
        raise TwirpError("invalid_argument", "clear cannot be combined with other operations")
    if change.set and (change.add or change.remove):
        raise TwirpError("invalid_argument", "set cannot be combined with add or remove")
    if change.clear:
        return []
    if change.set:
        return list(change.set)
    kept = [value for value in current if value not in set(change.remove)]
    return kept + [value for value in change.add if value not in kept]


_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


def check_inbound(trunk: sip.SIPInboundTrunkInfo) -> None:
    if not (trunk.auth_username or trunk.auth_password or trunk.allowed_addresses or trunk.numbers):
        raise TwirpError(
            "invalid_argument",
            "for security, one of the fields must be set: AuthUsername+AuthPassword, "
            "AllowedAddresses or Numbers",
        )


def check_outbound(trunk: sip.SIPOutboundTrunkInfo) -> None:
    if not trunk.numbers:
        raise TwirpError("invalid_argument", "no trunk numbers specified")
    if not trunk.address:
        raise TwirpError("invalid_argument", "no outbound address specified")
    address = trunk.address
    bad = address.lower().startswith(("sip:", "sips:")) or any(c in address for c in "@;")
    if bad or "transport=" in address or not _ADDRESS.fullmatch(address):
        raise TwirpError(
            "invalid_argument",
            f"address must be a hostname or IP, optionally with a port, not a SIP URI: {address!r}",
        )


@dataclass
class Project:
    """One LiveKit project's SIP trunks and dispatch rules."""

    inbound: dict[str, sip.SIPInboundTrunkInfo] = field(default_factory=dict)
    outbound: dict[str, sip.SIPOutboundTrunkInfo] = field(default_factory=dict)
    rules: dict[str, sip.SIPDispatchRuleInfo] = field(default_factory=dict)

    def check_conflicts(self, trunk: sip.SIPInboundTrunkInfo) -> None:
        """Two inbound trunks that would take the same call (livekit/protocol
        ``sip/sip.go``, ``ValidateTrunksIter``): the same number, and callers that both
        accept (either list empty, or a number in common)."""
        for other in self.inbound.values():
            if other.sip_trunk_id == trunk.sip_trunk_id:
                continue
            numbers = {normalise(n) for n in trunk.numbers} & {normalise(n) for n in other.numbers}
            if not trunk.numbers and not other.numbers:
                numbers = {""}
            callers_a, callers_b = set(trunk.allowed_numbers), set(other.allowed_numbers)
            callers_meet = not callers_a or not callers_b or bool(callers_a & callers_b)
            if numbers and callers_meet:
                raise TwirpError(
                    "invalid_argument",
                    f"Conflicting inbound SIP Trunks: {trunk.sip_trunk_id!r} and "
                    f"{other.sip_trunk_id!r}, using the same number(s) {sorted(numbers)}",
                )
