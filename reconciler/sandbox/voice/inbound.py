"""A PSTN call to a DID, followed through what was applied (docs/sandbox.md, "Calls").

Called by ``POST /_sandbox/calls``. Exotel documents every inbound call as PSTN -> DID ->
its flow, whose Connect applet dials ``sip:<trunk_sid>`` -> the trunk's destination URIs
(docs/exotel-api.md, "Calls"). The sandbox follows the DID's mapping and mode as the API
set them, and the DID's flow when one is set (``PUT /_sandbox/flows/{did}``, ``flows``):
its Connect applet (a trunk, or the Dynamic URL's answer) and, when the bot hangs up, its
Passthru handoff to the agents' Connect applet. Without a flow, a DID in mode ``pstn`` is
connected to the trunk it is mapped on (the documented Connect applet dialling
``sip:<its trunk>``); a DID in mode ``flow`` fails and says it needs one. A trunk's
destinations are tried in priority order (lower first), shuffled by weight within a
priority, moving on after a refused connection, no answer within the answer timeout, or
a 5xx/6xx; a 4xx (busy, declined, not found) ends the call.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from reconciler.sandbox import rules
from reconciler.sandbox.store import Account, Destination, Store, Trunk
from reconciler.sandbox.voice import dialer, flows
from reconciler.sandbox.voice.pstn import Pstn
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
    at: datetime | None = None
    audio: list[int] | None = None


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


@dataclass
class Context:
    """What a call needs from the sandbox while it runs."""

    store: Store
    flows: flows.Flows
    settings: dialer.Settings
    rng: random.Random
    session: aiohttp.ClientSession
    pstn: Pstn
    at: datetime | None = None  # the call's start as the webhooks see it (--at)
    audio: list[int] | None = None  # what the caller plays (a WAV's samples), or the tone


@dataclass(frozen=True)
class Routed:
    """Where a call goes first: a trunk, or the flow that will say."""

    account: Account
    trunk: Trunk | None = None
    flow: flows.Flow | None = None


def route(store: Store, known: flows.Flows, request: Request) -> tuple[Call, Routed | None]:
    """The call's record, and where it goes (None: the record says why it cannot)."""
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
    call.mode = trunk.phone_numbers[mapped[1]].mode or "pstn"
    flow = known.get(request.account, request.to)
    if flow is not None:
        call.event("Exotel", "Exotel", f"flow of {request.to} (mode {call.mode})")
        return call, Routed(account, flow=flow)
    if call.mode == "flow":
        call.event("Exotel", "PSTN", "mode flow and no flow set for this DID: call fails")
        call.end(
            "failed",
            f"{request.to} is in mode flow and no flow is set for it (PUT "
            f"/_sandbox/flows/{request.to}); a DID in mode pstn goes to its trunk",
        )
        return call, None
    return call, Routed(account, trunk=trunk)


async def run(call: Call, routed: Routed, context: Context, *, hangup_after: float) -> None:
    """The whole call: its Connect applet, its legs, and the handoff when the bot hangs up."""
    created, started = context.at or datetime.now(UTC), time.monotonic()
    if routed.flow is None:
        assert routed.trunk is not None
        await _connect_trunk(call, routed.trunk, (), context, hangup_after=hangup_after)
        return
    when = (created, started)
    target = await _applet(call, routed.account, routed.flow.connect, context, when)
    if target is None:
        return
    trunk, destination = target
    last = await _connect_trunk(
        call, trunk, destination.headers, context, hangup_after=hangup_after, final=False
    )
    handoff = routed.flow.passthru
    if last is None or last.leg.ended_by != "partner" or handoff is None:
        _finish(call, last)
        return
    talked = ((last.leg.ended_ms or 0) - (last.leg.answered_ms or 0)) / 1000
    query = flows.passthru_query(call.sid, call.from_, call.to, created, started, talked_s=talked)
    call.event("Exotel", "Passthru", f"GET {flows.shown_url(handoff.url)} (the bot hung up)")
    asked = await flows.ask(context.session, "passthru", handoff.url, query, handoff.timeout_s)
    call.exchanges.append(asked.document())
    said = asked.error or str(asked.status)
    call.event("Passthru", "Exotel", said)
    if asked.status != 200:
        call.event("Exotel", "PSTN", "hang up (the handoff said no)")
        call.end("completed", f"the bot hung up; the handoff answered {said}: hang up")
        return
    agents = await _applet(call, routed.account, handoff.then, context, when)
    if agents is None:
        return
    agent_trunk, agent_destination = agents
    _finish(
        call,
        await _connect_trunk(
            call,
            agent_trunk,
            agent_destination.headers,
            context,
            hangup_after=hangup_after,
            final=False,
        ),
    )


async def _applet(
    call: Call,
    account: Account,
    applet: flows.Connect,
    context: Context,
    when: tuple[datetime, float],
) -> tuple[Trunk, flows.Destination] | None:
    """A Connect applet: its trunk, asked of its Dynamic URL (then its fallback) when it
    has one. None when the call ended here (the record says why)."""
    chosen: flows.Destination | None
    if applet.trunk is not None:
        chosen = flows.Destination(applet.trunk)
        call.event("Exotel", "Exotel", f"Connect applet: sip:{applet.trunk}")
    else:
        chosen = None
        query = flows.connect_query(call.sid, call.from_, call.to, *when)
        urls = (("dynamic_url", applet.url), ("fallback_url", applet.fallback_url))
        for kind, url in urls:
            if url is None:
                continue
            call.event("Exotel", "Dynamic URL", f"GET {flows.shown_url(url)}")
            asked = await flows.ask(context.session, kind, url, query, applet.timeout_s)
            chosen = flows.read_answer(asked)
            call.exchanges.append(asked.document())
            said = f"{asked.status}" if asked.status else (asked.error or "no answer")
            if chosen is not None:
                call.event("Dynamic URL", "Exotel", f"{said}: trunk {chosen.trunk}")
                break
            call.event("Dynamic URL", "Exotel", f"{said}: {'; '.join(asked.problems)}")
        if chosen is None:
            call.event("Exotel", "PSTN", "the Connect applet got no usable answer: call fails")
            call.end(
                "failed", "the Connect applet's Dynamic URL (and fallback) gave no usable answer"
            )
            return None
    assert chosen is not None
    trunk = account.trunks.get(chosen.trunk)
    if trunk is None:
        call.event("Exotel", "PSTN", f"no trunk {chosen.trunk} in this account: call fails")
        call.end(
            "failed", f"the Connect applet named trunk {chosen.trunk}, which {account.sid} has not"
        )
        return None
    call.trunk_sid, call.trunk_name = trunk.trunk_sid, trunk.trunk_name
    if chosen.record:
        call.recording = chosen.recording_channels or "single"
    return trunk, chosen


async def _connect_trunk(
    call: Call,
    trunk: Trunk,
    headers: tuple[tuple[str, str], ...],
    context: Context,
    *,
    hangup_after: float,
    final: bool = True,
) -> dialer.Placed | None:
    """Try the trunk's destinations in Exotel's order until one ends the leg."""
    call.trunk_sid, call.trunk_name = trunk.trunk_sid, trunk.trunk_name
    destinations = order(list(trunk.destination_uris.values()), context.rng)
    if not destinations:
        call.event("Exotel", "PSTN", "the trunk has no destination URIs: call fails")
        call.end("failed", f"trunk {trunk.trunk_name} has no destination URIs")
        return None
    call.event("Exotel", "Exotel", f"trunk {trunk.trunk_name} ({trunk.trunk_sid})")
    last: dialer.Placed | None = None
    for destination in destinations:
        host, port, transport, _ = rules.parse_destination(destination.destination)
        target = dialer.Target(destination.destination, host, port, transport)
        last = await dialer.place(
            call,
            target,
            context.settings,
            did=call.to,
            domain=trunk.domain_name,
            headers=headers,
            hangup_after=hangup_after,
            audio=context.audio,
        )
        if not last.fail_over:
            break
    if final:
        _finish(call, last)
    return last


def _finish(call: Call, last: dialer.Placed | None) -> None:
    if call.done.is_set():
        return
    if last is None:
        call.end("failed", "no destination was tried")
        return
    leg = last.leg
    if last.fail_over:
        call.event("Exotel", "PSTN", "no destination took the call: call fails")
        call.end("failed", f"no destination took the call (last: {leg.outcome}, {leg.detail})")
        return
    call.event("Exotel", "PSTN", {"completed": "hang up"}.get(last.status, last.status))
    call.end(last.status, leg.detail or leg.outcome)


async def run_api(
    call: Call,
    account: Account,
    flow: flows.Flow,
    context: Context,
    *,
    ring_for: float,
    hangup_after: float,
) -> None:
    """A Calls API call to a flow: ring the customer (the sandbox's PSTN); once they
    answer, run the flow's Connect applet, whose trunk's destinations are called with the
    customer's number as the caller and the ExoPhone as the number called."""
    created, started = datetime.now(UTC), time.monotonic()
    phone = context.pstn.get(call.from_)
    call.event("Exotel", "PSTN", f"call {call.from_} (shown {call.to})")
    if phone.behaviour in ("busy", "unreachable"):
        status = "busy" if phone.behaviour == "busy" else "failed"
        call.event("PSTN", "Exotel", phone.behaviour)
        call.end(status, f"the customer's number is {phone.behaviour}")
        return
    rings = phone.ring_s if phone.behaviour == "answer" else ring_for
    await asyncio.sleep(min(rings, ring_for))
    if phone.behaviour == "no-answer" or rings > ring_for:
        call.event("PSTN", "Exotel", "no answer")
        call.end("no-answer", f"the customer did not answer within {ring_for:g} s")
        return
    call.event("PSTN", "Exotel", "answered: run the flow")
    target = await _applet(call, account, flow.connect, context, (created, started))
    if target is None:
        return
    trunk, destination = target
    _finish(
        call,
        await _connect_trunk(
            call, trunk, destination.headers, context, hangup_after=hangup_after, final=False
        ),
    )
