"""A PSTN call to a DID, followed through what was applied (docs/sandbox.md, "Calls").

Called by ``POST /_sandbox/calls``. Exotel documents every inbound call as PSTN -> DID ->
its flow, whose Connect applet dials ``sip:<trunk_sid>`` -> the trunk's destination URIs
(docs/exotel-api.md, "Calls"). The sandbox follows the DID's mapping and mode as the API
set them: a DID in mode ``pstn`` with no flow set is connected to the trunk it is mapped
on (the documented Connect applet dialling ``sip:<its trunk>``); a DID in mode ``flow``
needs its flow (set with ``PUT /_sandbox/flows/{did}``), without which the call fails and
says so. The trunk's destinations are tried in priority order (lower first), shuffled by
weight within a priority, moving on after a refused connection, no answer within the
answer timeout, or a 5xx/6xx; a 4xx (busy, declined, not found) ends the call.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from reconciler.sandbox import rules
from reconciler.sandbox.store import Destination, Store, Trunk
from reconciler.sandbox.voice import dialer
from reconciler.sandbox.voice.records import Call

E164 = re.compile(r"\+[1-9][0-9]{7,14}")


class CallError(ValueError):
    """A call request the sandbox cannot place; the message says why and what to send."""


@dataclass(frozen=True)
class Request:
    account: str
    to: str
    from_: str
    hangup_after: float


def order(destinations: list[Destination], rng: random.Random) -> list[Destination]:
    """Priority order, lower first; within a priority, a weighted shuffle (each draw
    takes a destination with probability weight / remaining weight)."""
    ordered: list[Destination] = []
    for priority in sorted({d.priority for d in destinations}):
        group = [d for d in destinations if d.priority == priority]
        while group:
            total = sum(max(d.weight, 0) for d in group)
            if total <= 0:
                ordered += sorted(group, key=lambda d: d.destination)
                break
            pick = rng.uniform(0, total)
            for index, candidate in enumerate(group):
                pick -= max(candidate.weight, 0)
                if pick <= 0:
                    ordered.append(group.pop(index))
                    break
            else:
                ordered.append(group.pop())
    return ordered


def route(store: Store, request: Request) -> tuple[Call, Trunk | None]:
    """The call's record, and the trunk it goes to (None: the record says why not)."""
    if not E164.fullmatch(request.to):
        raise CallError(f"'to' must be a DID in E.164, like +918040264208, not {request.to!r}")
    if not E164.fullmatch(request.from_):
        raise CallError(
            f"'from' must be the caller's number in E.164, like +919876543210, not "
            f"{request.from_!r}"
        )
    if request.account not in store.accounts:
        raise CallError(f"no account {request.account} in this sandbox")
    account = store.accounts[request.account]
    call = Call(request.account, "inbound", request.from_, request.to)
    call.event("PSTN", "Exotel", f"call from {request.from_} to {request.to}")
    mapped = account.dids.get(request.to)
    if mapped is None:
        call.event("Exotel", "PSTN", "the number is not mapped on any trunk: call fails")
        call.end("failed", f"{request.to} is not mapped on any trunk of {request.account}")
        return call, None
    trunk = account.trunks[mapped[0]]
    number = trunk.phone_numbers[mapped[1]]
    call.trunk_sid, call.trunk_name, call.mode = (
        trunk.trunk_sid,
        trunk.trunk_name,
        (number.mode or "pstn"),
    )
    if call.mode == "flow":
        call.event("Exotel", "PSTN", "mode flow and no flow set for this DID: call fails")
        call.end(
            "failed",
            f"{request.to} is in mode flow and no flow is set for it (PUT "
            f"/_sandbox/flows/{request.to}); a DID in mode pstn goes to its trunk",
        )
        return call, None
    call.event("Exotel", "Exotel", f"Connect applet: sip:{trunk.trunk_sid} ({trunk.trunk_name})")
    return call, trunk


async def connect(
    call: Call,
    trunk: Trunk,
    settings: dialer.Settings,
    rng: random.Random,
    *,
    hangup_after: float,
) -> None:
    """Try the trunk's destinations in Exotel's order until one ends the call."""
    destinations = order(list(trunk.destination_uris.values()), rng)
    if not destinations:
        call.event("Exotel", "PSTN", "the trunk has no destination URIs: call fails")
        call.end("failed", f"trunk {trunk.trunk_name} has no destination URIs")
        return
    last: dialer.Placed | None = None
    for destination in destinations:
        host, port, transport, _ = rules.parse_destination(destination.destination)
        target = dialer.Target(destination.destination, host, port, transport)
        last = await dialer.place(
            call,
            target,
            settings,
            did=call.to,
            domain=trunk.domain_name,
            headers=(),
            hangup_after=hangup_after,
        )
        if not last.fail_over:
            break
    assert last is not None
    leg = last.leg
    if last.fail_over:
        call.event("Exotel", "PSTN", "no destination took the call: call fails")
        call.end("failed", f"no destination took the call (last: {leg.outcome}, {leg.detail})")
        return
    call.event("Exotel", "PSTN", {"completed": "hang up"}.get(last.status, last.status))
    call.end(last.status, leg.detail or leg.outcome)
