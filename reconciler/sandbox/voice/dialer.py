"""One INVITE to one destination, placed as Exotel's gateway places it, and its media.

Called by ``inbound`` for each destination in turn. What goes on the wire follows
Exotel's documented INVITE to a trunk (docs/exotel-api.md, "Calls"): the DID in the
Request-URI and To, the caller in From and P-Asserted-Identity at the account's
``pstn.exotel.com`` domain, ``X-Exotel-CallSid``, ``X-Exotel-LegSid`` and
``X-Exotel-TrunkSid`` (and a route's custom headers), an SDP offer of PCMA, PCMU and
telephone-event. RFC 3261 says how each outcome ends: ACK after a refusal (17.1.1.3),
ACK then BYE after a 2xx (13.2.2.4, 15.1.1), CANCEL when it only rings (9.1). A partner's
BYE ends the call from its side (15.1.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.sandbox.voice.records import Call, Leg
from reconciler.sip import message as sip
from reconciler.sip import rtp, sdp
from reconciler.sip import stream as wire

USER_AGENT = "reconciler-sandbox (Exotel in a box)"
ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, INFO"  # what this side answers (not re-INVITEs)


def answer_within(method: str) -> tuple[int, str, list[tuple[str, str]]]:
    """The answer to a request within a call (either side's): BYE, OPTIONS and INFO 200;
    anything else 405 with what is allowed (RFC 3261 8.2.1)."""
    if method in ("BYE", "OPTIONS", "INFO"):
        return 200, "OK", []
    return 405, "Method Not Allowed", [("Allow", ALLOW)]


@dataclass(frozen=True)
class Settings:
    """How the gateway reaches partners (``reconciler sandbox`` options)."""

    host: str = "127.0.0.1"  # where its own media and connections come from
    resolve: Mapping[tuple[str, int], str] = field(default_factory=dict)  # --resolve
    # --connect-to: (host, port) -> (address, port), as curl's
    connect_to: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    ca: str | None = None  # --sip-ca: verify partners' TLS against these, not the system's
    answer_timeout: float = 5.0  # no answer of any kind within this: try the next destination
    ring_timeout: float = 45.0  # ringing without an answer this long: no-answer


async def race(
    first: asyncio.Future[object], second: asyncio.Future[object]
) -> set[asyncio.Future[object]]:
    """Wait for the first of two to finish; the other is cancelled, whatever happens
    (a cancelled call, a failed read), so nothing keeps playing to a closed socket."""
    try:
        done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (first, second):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return done


def said_true(task: asyncio.Future[object], done: set[asyncio.Future[object]]) -> bool:
    """Whether a finished task returned True (not failed, not cancelled)."""
    return (
        task in done and not task.cancelled() and task.exception() is None and task.result() is True
    )


@dataclass(frozen=True)
class Target:
    uri: str
    host: str
    port: int
    transport: str  # tcp | tls


@dataclass
class Placed:
    """What a leg came to, for the call: its record, and whether to try the next."""

    leg: Leg
    fail_over: bool = False
    status: str = "failed"  # the call's status if this is the last leg


async def _address(target: Target, settings: Settings) -> tuple[str, int]:
    """Where to connect for a destination: ``--connect-to``, ``--resolve`` (both also for
    an IP destination, a test affordance: those must be public), else DNS."""
    key = (target.host.lower(), target.port)
    if key in settings.connect_to:
        return settings.connect_to[key]
    forced = settings.resolve.get(key)
    if forced is not None:
        return forced, target.port
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(target.host, target.port, type=0, proto=6)
    return str(found[0][4][0]), target.port


def _tls(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca)


async def place(
    call: Call,
    target: Target,
    settings: Settings,
    *,
    did: str,
    domain: str,
    headers: Sequence[tuple[str, str]],
    hangup_after: float,
    audio: Sequence[int] | None = None,
) -> Placed:
    """Connect, INVITE, and see the leg through to its end (playing ``audio``, 8 kHz
    samples, or the test tone)."""
    leg = Leg(destination=target.uri, transport=target.transport)
    call.legs.append(leg)
    label = f"{target.host}:{target.port}"
    placed = Placed(leg)
    try:
        address, port = await _address(target, settings)
        leg.address = f"{address}:{port}"
    except OSError as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        leg.outcome, leg.detail = "unreachable", f"cannot resolve {target.host} ({why})"
        placed.fail_over = True
        call.event("Exotel", label, f"DNS: {leg.detail}")
        return placed
    try:
        async with asyncio.timeout(settings.answer_timeout):
            reader, writer = await asyncio.open_connection(
                address,
                port,
                ssl=_tls(settings) if target.transport == "tls" else None,
                server_hostname=target.host if target.transport == "tls" else None,
                limit=wire.STREAM_LIMIT,
            )
    except ConnectionRefusedError:
        leg.outcome, leg.detail = "refused", "connection refused"
    except TimeoutError:
        shake = " and TLS handshake" if target.transport == "tls" else ""
        leg.outcome, leg.detail = "timeout", f"no connection{shake} within the answer timeout"
    except ssl.SSLError as exc:
        leg.outcome, leg.detail = "tls-failed", f"TLS: {wire.ssl_reason(exc)}"
    except OSError as exc:
        leg.outcome, leg.detail = "unreachable", str(exc) or type(exc).__name__
    else:
        try:
            return await _converse(
                call,
                placed,
                target,
                settings,
                (reader, writer),
                did=did,
                domain=domain,
                headers=headers,
                hangup_after=hangup_after,
                audio=audio,
            )
        finally:
            await wire.close(writer)
    placed.fail_over = True
    call.event("Exotel", label, f"{target.transport.upper()} connect: {leg.detail}")
    return placed


@dataclass
class _Dialog:
    """The identities of one leg (RFC 3261 8.1.1, 12.1.2)."""

    call_id: str
    local_tag: str
    uri: str
    from_: str
    to: str
    via_host: str
    transport: str
    remote_tag: str | None = None
    remote_target: str | None = None
    route: tuple[str, ...] = ()  # RFC 3261 12.1.2: the 2xx's Record-Route, reversed
    cseq: int = 1

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.transport.upper()} {self.via_host};branch={branch};rport"

    def request(self, method: str, branch: str, *, cseq: int | None = None) -> sip.Request:
        """A request of this dialog; within it (ACK of a 2xx, BYE), to the remote target
        along the route set (12.2.1.1)."""
        to = f"{self.to};tag={self.remote_tag}" if self.remote_tag else self.to
        within = method == "BYE" or (method == "ACK" and self.remote_target is not None)
        uri = self.remote_target if within and self.remote_target else self.uri
        routes = tuple(("Route", hop) for hop in self.route) if within else ()
        return sip.Request(
            method,
            uri,
            via=self.via(branch),
            from_=self.from_,
            to=to,
            call_id=self.call_id,
            cseq=cseq or self.cseq,
            headers=routes,
        )


@dataclass
class _Run:
    """One leg in progress: what every step of it needs."""

    call: Call
    placed: Placed
    dialog: _Dialog
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    settings: Settings
    label: str
    key: bytes | None = None  # this side's SDES key, on a TLS leg

    @property
    def leg(self) -> Leg:
        return self.placed.leg

    async def send(self, request: sip.Request, what: str | None = None) -> None:
        self.writer.write(request.encode(USER_AGENT))
        await self.writer.drain()
        if what:
            self.call.event("Exotel", self.label, what)

    def heard(self, response: sip.Response) -> None:
        self.call.event(self.label, "Exotel", f"{response.code} {response.reason}")

    async def final(self, branch: str) -> sip.Response | None:
        """The INVITE's final response; None when nothing at all came within the answer
        timeout; CANCEL (then the 487) when it rang past the ring timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.answer_timeout
        ringing = False
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    response = await wire.read_response(self.reader)
            except TimeoutError:
                return await self.cancel(branch) if ringing else None
            if not self._ours(response, "INVITE"):
                continue
            self._note(response)
            if response.final:
                return response
            if not ringing:  # something answered: now it may ring up to the ring timeout
                ringing = True
                deadline = loop.time() + self.settings.ring_timeout

    def _ours(self, response: sip.Response, method: str) -> bool:
        return response.header("call-id") == self.dialog.call_id and response.cseq_method == method

    def _note(self, response: sip.Response) -> None:
        self.leg.responses.append(
            {"code": response.code, "reason": response.reason, "at_ms": self.call.now_ms()}
        )
        self.heard(response)

    async def cancel(self, branch: str) -> sip.Response:
        """CANCEL a ringing INVITE (RFC 3261 9.1: its Request-URI, Call-ID, From, To, CSeq
        number and Via), then wait for the INVITE's 487 (9.2), which the caller ACKs."""
        await self.send(
            self.dialog.request("CANCEL", branch, cseq=1), "CANCEL (rang past the ring timeout)"
        )
        with contextlib.suppress(*_GONE):
            async with asyncio.timeout(4.0):
                while True:
                    response = await wire.read_response(self.reader)
                    if self._ours(response, "CANCEL"):
                        self.heard(response)
                    elif self._ours(response, "INVITE") and response.final:
                        self._note(response)
                        return response
        return sip.Response(487, "Request Terminated")

    async def answered(
        self,
        final: sip.Response,
        media: rtp.Leg,
        hangup_after: float,
        audio: Sequence[int] | None,
    ) -> None:
        """ACK the 2xx, play the tone until hangup time or the partner's BYE, then BYE."""
        leg, dialog = self.leg, self.dialog
        leg.outcome, leg.answered_ms, self.placed.status = (
            "answered",
            self.call.now_ms(),
            ("completed"),
        )
        contact = final.header("contact") or ""
        if "<" in contact:
            contact = contact.partition("<")[2].partition(">")[0]
        dialog.remote_target = contact or None
        dialog.route = tuple(reversed(final.values("record-route")))
        await self.send(dialog.request("ACK", sip.branch(), cseq=1), "ACK")
        answer = sdp.media(final.body)
        codec = answer.codecs[0] if answer.codecs else None
        playback: asyncio.Future[object]
        if codec is None or answer.address is None or not answer.port:
            leg.detail = "answered without a G.711 audio stream in its SDP"
            self.call.event("Exotel", self.label, "media: none (no G.711 stream in the answer)")
            playback = asyncio.ensure_future(asyncio.sleep(hangup_after))
        else:
            kind = "RTP"
            if self.key is not None and answer.secure and answer.key is not None:
                media.secure(self.key, answer.key)
                kind = "SRTP"
            elif self.key is not None:
                leg.detail = "the far end answered RTP/AVP to an SRTP offer: plain RTP"
            self.call.event("Exotel", self.label, f"{kind} {codec} both ways")
            playback = asyncio.ensure_future(
                media.play(codec, (answer.address, answer.port), hangup_after, audio)
            )
        watching: asyncio.Future[object] = asyncio.ensure_future(self.watch_for_bye())
        done = await race(playback, watching)
        partner_hung_up = said_true(watching, done)
        if codec is not None:
            leg.media = media.figures.document()
        if partner_hung_up:
            leg.ended_by, leg.ended_ms = "partner", self.call.now_ms()
            return
        dialog.cseq += 1
        await self.send(dialog.request("BYE", sip.branch()), "BYE")
        with contextlib.suppress(*_GONE):
            async with asyncio.timeout(2.0):
                self.heard(await wire.final(self.reader, dialog.call_id, "BYE", []))
        leg.ended_by, leg.ended_ms = "sandbox", self.call.now_ms()

    async def watch_for_bye(self) -> bool:
        """True when the partner sends BYE on this connection (answered 200); False when
        it closes the connection."""
        while True:
            message = await wire.read_message(self.reader)
            if message is None:
                return False
            if not isinstance(message, sip.Incoming) or message.call_id != self.dialog.call_id:
                continue
            code, reason, headers = answer_within(message.method)
            self.call.event(self.label, "Exotel", message.method)
            self.writer.write(
                sip.reply(
                    message,
                    code,
                    reason,
                    to_tag=self.dialog.local_tag,
                    server=USER_AGENT,
                    headers=headers,
                )
            )
            await self.writer.drain()
            self.call.event("Exotel", self.label, f"{code} {reason}")
            if message.method == "BYE":
                return True


_GONE = (TimeoutError, OSError, asyncio.IncompleteReadError, sip.NotSipError)


async def _converse(
    call: Call,
    placed: Placed,
    target: Target,
    settings: Settings,
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    *,
    did: str,
    domain: str,
    headers: Sequence[tuple[str, str]],
    hangup_after: float,
    audio: Sequence[int] | None,
) -> Placed:
    reader, writer = connection
    leg, label = placed.leg, f"{target.host}:{target.port}"
    local = writer.get_extra_info("sockname")
    via_host = f"{local[0]}:{local[1]}"
    media = rtp.Leg()
    await media.bind(settings.host)
    caller = call.from_
    tag = sip.token(6)
    dialog = _Dialog(
        call_id=f"{sip.token()}@{domain}",
        local_tag=tag,
        uri=f"sip:{did}@{target.host}:{target.port};transport={target.transport}",
        from_=f'"{caller}" <sip:{caller}@{domain}>;tag={tag}',
        to=f"<sip:{did}@{target.host}:{target.port}>",
        via_host=via_host,
        transport=target.transport,
    )
    leg.headers = {
        "X-Exotel-CallSid": call.sid,
        "X-Exotel-LegSid": leg.sid,
        "X-Exotel-TrunkSid": call.trunk_sid or "",
        **dict(headers),
    }
    run = _Run(call, placed, dialog, reader, writer, settings, label)
    if target.transport == "tls":  # Exotel pairs TLS signalling with SRTP (SDES)
        run.key = sdp.new_key()
    branch = sip.branch()
    invite = sip.Request(
        "INVITE",
        dialog.uri,
        via=dialog.via(branch),
        from_=dialog.from_,
        to=dialog.to,
        call_id=dialog.call_id,
        cseq=1,
        contact=f"<sip:{caller}@{via_host};transport={target.transport}>",
        headers=(
            ("P-Asserted-Identity", f"<sip:{caller}@{domain}>"),
            ("P-Early-Media", "supported"),
            ("Supported", "replaces"),
            ("Allow", ALLOW),
            *leg.headers.items(),
        ),
        body=sdp.offer(
            settings.host,
            media.port,
            secure=target.transport == "tls",
            session=int(time.time()),
            name="Exotel",
            key=run.key,
        ),
    )
    try:
        custom = "".join(f", {name}: {value}" for name, value in headers)
        await run.send(invite, f"INVITE sip:{did} ({target.transport.upper()}{custom})")
        final = await run.final(branch)
        if final is None:  # no answer of any kind: the next destination
            leg.outcome, leg.detail = "timeout", "no response within the answer timeout"
            placed.fail_over = True
            return placed
        dialog.remote_tag = final.to_tag
        if final.code == 487:
            await run.send(dialog.request("ACK", branch), "ACK")
            leg.outcome, leg.detail = "no-answer", "rang without an answer: cancelled"
            placed.status = "no-answer"
            return placed
        if final.code >= 300:
            await run.send(dialog.request("ACK", branch), "ACK")
            return _refused(placed, final)
        await run.answered(final, media, hangup_after, audio)
        return placed
    except _GONE as exc:
        leg.outcome = leg.outcome or "unreachable"
        leg.detail = f"the connection failed: {wire.closed(exc)}"
        placed.fail_over = leg.answered_ms is None
        return placed
    finally:
        media.close()


def _refused(placed: Placed, final: sip.Response) -> Placed:
    """A final refusal: what it means for the call, and whether to try the next."""
    leg = placed.leg
    leg.detail = f"{final.code} {final.reason}"
    if final.code in (486, 600):
        leg.outcome, placed.status = "busy", "busy"
    elif final.code == 603:
        leg.outcome, placed.status = "declined", "busy"
    elif final.code in (408, 480):
        leg.outcome, placed.status = "no-answer", "no-answer"
    elif final.code >= 500:
        leg.outcome = "server-error"
    else:
        leg.outcome = "rejected"
    placed.fail_over = final.code >= 500  # 5xx and 6xx: the next destination
    return placed
