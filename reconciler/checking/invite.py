"""``check --invite``: a test call to a DID, ended politely, and what its answer means.

Called by ``checking.probe`` after OPTIONS was answered. The INVITE offers PCMA and PCMU
(``sdp.offer``) with the headers the DID's route would send; RFC 3261 says how to end each
outcome: ACK and BYE after a 2xx (13.2.2.4, 15.1.1), ACK after a refusal (17.1.1.3),
CANCEL when it only rings (9.1). It rings a real bot or agent, hence an option.

To a LiveKit partner the call is dressed as Exotel's own (``EXOTEL_CALLER`` at the
trunk's ``pstn.exotel.com`` domain, ``P-Asserted-Identity``, ``X-Exotel-CallSid``,
``X-Exotel-LegSid``, ``X-Exotel-TrunkSid``), since LiveKit picks the inbound trunk by the
called number, the caller and the From host, and its answer is judged by
``checking.livekit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import Sequence

from reconciler.checking import livekit
from reconciler.checking.results import NO_ANSWER, Call, Result, Ringing, Settings
from reconciler.checking.wire import Dialog, context
from reconciler.sip import message as sip
from reconciler.sip import sdp
from reconciler.sip import stream as wire
from reconciler.sip.stream import STREAM_LIMIT, closed, ssl_reason

# The caller of a test call dressed as Exotel's: a number no phone has (+91 then 0), so
# nothing on the partner's side takes it for a customer.
EXOTEL_CALLER = "+910000000000"
EXOTEL_ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, INFO"  # what Exotel's gateway answers


async def call(
    result: Result, call: Call, settings: Settings, verified: ssl.SSLContext | None
) -> None:
    """``--invite``: a call to ``call.did`` on a connection of its own, ended politely."""
    if not result.answer:
        return  # nothing answers SIP there: the report already says why
    destination = result.destination
    assert result.address is not None
    tls = None
    if destination.transport == "tls":
        ok = result.tls is not None and result.tls.verified
        tls = (verified or context(settings.ca, verify=True)) if ok else context(None, verify=False)
    try:
        async with asyncio.timeout(settings.timeout):
            reader, writer = await asyncio.open_connection(
                result.address,
                destination.port,
                ssl=tls,
                server_hostname=destination.host if tls else None,
                limit=STREAM_LIMIT,
            )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        result.error(f"INVITE: could not connect again: {ssl_reason(exc)}")
        return
    # Where the call comes from, as the far end sees it (unless a NAT is between): LiveKit
    # admits a call by this address, so it decides what a refusal can mean.
    source = str(writer.get_extra_info("sockname")[0])
    try:
        ringing = await _invite(result, call, reader, writer, settings)
    finally:
        await wire.close(writer)
    result.invite = dataclasses.replace(ringing, source=source)
    partner = destination.partner
    if partner is not None and partner.livekit:
        livekit.judge(result, result.invite, partner)
    else:
        judge(result, result.invite)


async def _invite(
    result: Result,
    call: Call,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: Settings,
) -> Ringing:
    dialog = Dialog(result, writer, settings)
    secure = dialog.transport == "tls"
    branch = sip.branch()
    to = f"<{dialog.uri(call.did)}>"
    headers = call.headers
    partner = result.destination.partner
    if partner is not None and partner.livekit:
        dialog.as_exotel(EXOTEL_CALLER, partner.realm)
        headers = _as_exotel(call, partner.realm)
    invite = sip.Request(
        "INVITE",
        dialog.uri(call.did),
        via=dialog.via(branch),
        from_=dialog.from_,
        to=to,
        call_id=dialog.call_id,
        cseq=1,
        contact=dialog.contact,
        headers=headers,
        body=sdp.offer(
            dialog.local_host,
            40000,
            secure=secure,
            session=int(time.time()),
            name="reconciler check",
        ),
    )
    seen: list[sip.Response] = []
    try:
        await dialog.send(invite)
        try:
            async with asyncio.timeout(settings.timeout):
                answer = await wire.final(reader, dialog.call_id, "INVITE", seen)
        except TimeoutError:
            return await _cancel(dialog, invite, reader, seen, settings)
        codec = sdp.chosen_codec(answer.body) if answer.body else _early_codec(seen)
        ringing = _ringing(seen)
        srtp = sdp.media(answer.body).secure if answer.body else None
        ended = await _end(dialog, invite, answer, reader, settings)
        return Ringing(
            call.did, answer.code, answer.reason, codec, ringing, ended, _codes(seen), srtp
        )
    except sip.NotSipError as exc:
        return Ringing(
            call.did, None, f"not SIP: {exc}", None, _ringing(seen), "no answer", _codes(seen)
        )
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        return Ringing(
            call.did,
            None,
            f"the far end {closed(exc)}",
            None,
            _ringing(seen),
            "no answer",
            _codes(seen),
        )


def _as_exotel(call: Call, realm: str) -> tuple[tuple[str, str], ...]:
    """The headers of Exotel's INVITE to a trunk (docs/exotel-api.md, section 9), with
    call and leg SIDs that say they are a test, then the trunk's SID and the route's
    custom headers (``call.headers``)."""
    test = sip.token()
    return (
        ("P-Asserted-Identity", f"<sip:{EXOTEL_CALLER}@{realm}>"),
        ("P-Early-Media", "supported"),
        ("Supported", "replaces"),
        ("Allow", EXOTEL_ALLOW),
        ("X-Exotel-CallSid", f"reconciler-check-{test}"),
        ("X-Exotel-LegSid", f"reconciler-check-{test}-1"),
        *call.headers,
    )


def _codes(seen: Sequence[sip.Response]) -> tuple[int, ...]:
    return tuple(response.code for response in seen)


def _ringing(seen: Sequence[sip.Response]) -> int | None:
    codes = [response.code for response in seen if response.code > 100]
    return codes[-1] if codes else None


def _early_codec(seen: Sequence[sip.Response]) -> str | None:
    for response in reversed(seen):
        if response.body:
            return sdp.chosen_codec(response.body)
    return None


def _in_dialog(
    dialog: Dialog, method: str, uri: str, *, via: str, to: str, cseq: int
) -> sip.Request:
    return sip.Request(
        method, uri, via=via, from_=dialog.from_, to=to, call_id=dialog.call_id, cseq=cseq
    )


async def _end(
    dialog: Dialog,
    invite: sip.Request,
    answer: sip.Response,
    reader: asyncio.StreamReader,
    settings: Settings,
) -> str:
    """End the call its answer began. A refusal is ACKed in the INVITE's transaction
    (RFC 3261 17.1.1.3: same branch, the answer's To tag). A 2xx is ACKed and hung up
    with BYE, each a transaction of its own sent to the remote target, the 2xx's Contact
    (13.2.2.4, 15.1.1)."""
    to = f"{invite.to};tag={answer.to_tag}" if answer.to_tag else invite.to
    if not 200 <= answer.code < 300:
        await dialog.send(_in_dialog(dialog, "ACK", invite.uri, via=invite.via, to=to, cseq=1))
        return "acknowledged"
    contact = answer.header("contact") or ""
    target = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else ""
    uri = target or invite.uri
    await dialog.send(_in_dialog(dialog, "ACK", uri, via=dialog.via(sip.branch()), to=to, cseq=1))
    await dialog.send(_in_dialog(dialog, "BYE", uri, via=dialog.via(sip.branch()), to=to, cseq=2))
    with contextlib.suppress(
        TimeoutError, sip.NotSipError, ConnectionError, asyncio.IncompleteReadError
    ):
        async with asyncio.timeout(settings.timeout):
            await wire.final(reader, dialog.call_id, "BYE", [])
    return "hung up"


async def _cancel(
    dialog: Dialog,
    invite: sip.Request,
    reader: asyncio.StreamReader,
    seen: list[sip.Response],
    settings: Settings,
) -> Ringing:
    """No final answer in time. After a provisional one, CANCEL (RFC 3261 9.1: same
    Request-URI, Call-ID, From, To, CSeq number and Via), then ACK the 487."""
    did = invite.uri.partition("sip:")[2].partition("@")[0]
    ringing = _ringing(seen)
    if not seen:
        return Ringing(did, None, NO_ANSWER, None, None, "no answer")
    heard = _codes(seen)  # before the CANCEL: what the far end said of its own accord
    cancel = _in_dialog(dialog, "CANCEL", invite.uri, via=invite.via, to=invite.to, cseq=1)
    await dialog.send(cancel)
    with contextlib.suppress(
        TimeoutError, sip.NotSipError, ConnectionError, asyncio.IncompleteReadError
    ):
        async with asyncio.timeout(settings.timeout):
            answer = await wire.final(reader, dialog.call_id, "INVITE", seen)
            # 487 as a rule; a 2xx that crossed the CANCEL is hung up all the same.
            await _end(dialog, invite, answer, reader, settings)
    reason = f"rang ({ringing}) without an answer within {settings.timeout:g} s"
    if ringing is None:
        reason = f"only 100 Trying within {settings.timeout:g} s"
    return Ringing(did, None, reason, _early_codec(seen), ringing, "cancelled", heard)


def judge(result: Result, ringing: Ringing) -> None:
    code = ringing.code
    said = f"{code} {ringing.reason}" if code is not None else ringing.reason
    if code is None:
        if ringing.ended == "cancelled" and ringing.provisional:
            result.note(f"INVITE to {ringing.did}: {said}; cancelled")
        else:
            result.error(f"INVITE to {ringing.did}: {said}")
        return
    if 200 <= code < 300:
        if ringing.codec not in ("PCMA", "PCMU"):
            chosen = ringing.codec or "no audio codec"
            result.error(f"INVITE to {ringing.did}: answered with {chosen}, not PCMA or PCMU")
        return
    if code in {488, 606}:
        result.error(
            f"INVITE to {ringing.did}: {said}: a codec mismatch; Exotel offers PCMA and PCMU only"
        )
    elif code in (401, 407):
        result.error(
            f"INVITE to {ringing.did}: {said}: the SBC asks for authentication, but Exotel "
            "sends calls unauthenticated (trust its addresses instead)"
        )
    elif code in (486, 600, 603):
        result.warn(f"INVITE to {ringing.did}: {said}: reachable, but the call was refused")
    else:
        result.error(f"INVITE to {ringing.did}: {said}: calls to this DID would fail")
