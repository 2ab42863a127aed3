"""The sandbox's SIP gateway: Exotel's SIP side, listening on loopback.

Started by the sandbox's server with ``--sip-port`` (TCP) and ``--sip-tls-port`` (TLS,
with the HTTPS certificate). Exotel's trunks carry TCP and TLS only, no UDP
(docs/exotel-api.md, "Calls"). On each connection it reads whole messages (``sip.stream``)
and hands them on: a new INVITE is a partner's outbound call (``outbound`` admits it; the
sandbox's PSTN answers it), requests and responses of a call in progress go to that
call, OPTIONS is answered 200 (a partner's keep-alive), anything else 481.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from reconciler.sandbox.store import Store
from reconciler.sandbox.voice import outbound
from reconciler.sandbox.voice.dialer import (
    ALLOW,
    USER_AGENT,
    Settings,
    answer_within,
    race,
    said_true,
)
from reconciler.sandbox.voice.pstn import INDIAN, Pstn
from reconciler.sandbox.voice.records import Call, Calls, Leg
from reconciler.sip import message as sip
from reconciler.sip import rtp, sdp
from reconciler.sip import stream as wire

log = structlog.get_logger("sandbox.sip")


@dataclass
class _Dialog:
    """A call the gateway answered, while it lasts: what else arrives for it."""

    # each request with the connection it came on, where its answer goes (RFC 3261 18.2.2)
    requests: asyncio.Queue[tuple[sip.Incoming, asyncio.StreamWriter]] = field(
        default_factory=asyncio.Queue
    )
    responses: asyncio.Queue[sip.Response] = field(default_factory=asyncio.Queue)


class Gateway:
    def __init__(
        self,
        store: Store,
        calls: Calls,
        pstn: Pstn,
        settings: Settings,
        *,
        peers: Mapping[str, str],
    ) -> None:
        self.store = store
        self.calls = calls
        self.pstn = pstn
        self.settings = settings
        self.peers = peers
        self.nonces = outbound.Nonces()
        self.dialogs: dict[str, _Dialog] = {}
        self.servers: list[asyncio.Server] = []
        self.connections: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None) -> str:
        """Start one listener; its URI, with the port it got."""
        server = await asyncio.start_server(
            self._connection, host, port, ssl=tls, limit=wire.STREAM_LIMIT
        )
        self.servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        return f"sip:{shown}:{bound};transport={'tls' if tls else 'tcp'}"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        source, port = str(peer[0]), int(peer[1])
        transport = "tls" if writer.get_extra_info("sslcontext") else "tcp"
        try:
            while True:
                message = await wire.read_message(reader)
                if message is None:
                    break
                await self._dispatch(message, writer, source, port, transport)
        except (
            OSError,
            ValueError,  # a line over the stream's limit; bytes that are no SIP message
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            sip.NotSipError,
        ) as exc:
            log.info("sip.connection_closed", source=source, why=sip.shown(wire.closed(exc)))
        except asyncio.CancelledError:
            pass  # the sandbox is stopping
        finally:
            if task is not None:
                self.connections.discard(task)
            await wire.close(writer)

    async def _dispatch(
        self,
        message: sip.Incoming | sip.Response,
        writer: asyncio.StreamWriter,
        source: str,
        port: int,
        transport: str,
    ) -> None:
        if isinstance(message, sip.Response):
            dialog = self.dialogs.get(message.header("call-id") or "")
            if dialog is not None:
                dialog.responses.put_nowait(message)
            return
        if message.method == "ACK" and message.call_id not in self.dialogs:
            return  # an ACK is never answered (RFC 3261 17.2.1); one for a closed call is done
        if not message.call_id or not message.header("cseq") or not message.headers.get("via"):
            self._answer(writer, message, 400, "Bad Request - Call-ID, CSeq and Via are required")
            return
        dialog = self.dialogs.get(message.call_id)
        if dialog is not None:
            dialog.requests.put_nowait((message, writer))
        elif message.method == "INVITE" and message.to_tag is None:  # a new call
            self.dialogs[message.call_id] = _Dialog()
            runner = _Answering(self, message, writer, (source, port), transport)
            self.calls.start(runner.call, runner.run())
        elif message.method == "OPTIONS":
            self._answer(writer, message, 200, "OK")
        else:  # in a dialog this side does not have (12.2.2)
            self._answer(writer, message, 481, "Call/Transaction Does Not Exist")

    @staticmethod
    def _answer(writer: asyncio.StreamWriter, request: sip.Incoming, code: int, why: str) -> None:
        headers = [("Allow", ALLOW)] if code in (200, 405) else []
        writer.write(
            sip.reply(request, code, why, to_tag=sip.token(6), server=USER_AGENT, headers=headers)
        )


class _Answering:
    """One partner INVITE: admitted or not, then the PSTN phone's answer and the call."""

    def __init__(
        self,
        gateway: Gateway,
        invite: sip.Incoming,
        writer: asyncio.StreamWriter,
        peer: tuple[str, int],
        transport: str,
    ) -> None:
        self.gateway = gateway
        self.invite = invite
        self.writer = writer
        self.transport = transport
        self.source = peer[0]  # where the partner's packets come from: where media goes
        self.public = outbound.peer_address(peer[0], gateway.peers)
        self.label = f"partner {self.public}"
        self.tag = sip.token(6)
        caller = outbound.user_of(invite.header("p-asserted-identity")) or outbound.user_of(
            invite.header("from")
        )
        # What the partner wrote, as records and ladders may show it (no control characters).
        self.call = Call("", "outbound", sip.shown(caller, 40), sip.shown(invite.user, 40))
        self.leg = Leg(destination=f"{peer[0]}:{peer[1]}", transport=transport, address=peer[0])
        self.call.legs.append(self.leg)
        self.dialog = gateway.dialogs[invite.call_id]

    def reply(self, code: int, reason: str, **extra: object) -> None:
        headers = list(extra.get("headers", ()))  # type: ignore[call-overload]
        body = str(extra.get("body", ""))
        if code == 200:
            headers.append(
                ("Contact", f"<sip:{self.invite.user}@{self._local()};transport={self.transport}>")
            )
        self.writer.write(
            sip.reply(
                self.invite,
                code,
                reason,
                to_tag=self.tag,
                server=USER_AGENT,
                headers=headers,
                body=body,
            )
        )
        self.leg.responses.append({"code": code, "reason": reason, "at_ms": self.call.now_ms()})
        self.call.event("Exotel", self.label, f"{code} {reason}")

    def _local(self) -> str:
        local = self.writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        return f"{local[0]}:{local[1]}"

    async def run(self) -> None:
        call = self.call
        try:
            call.event(
                self.label, "Exotel", f"INVITE sip:{self.invite.user} ({self.transport.upper()})"
            )
            self.reply(100, "Trying")
            admission = outbound.admit(
                self.gateway.store, self.invite, source=self.public, nonces=self.gateway.nonces
            )
            if admission.trunk is None:
                await self._refuse(admission)
                return
            trunk = admission.trunk
            call.account, call.trunk_sid, call.trunk_name = (
                trunk.account_sid,
                trunk.trunk_sid,
                trunk.trunk_name,
            )
            self.leg.detail = f"admitted by {admission.how}" + (
                f" as {admission.user}" if admission.user else ""
            )
            call.event("Exotel", "Exotel", f"trunk {trunk.trunk_name}: {self.leg.detail}")
            await self._ring()
        except (OSError, asyncio.IncompleteReadError, sip.NotSipError) as exc:
            call.end("failed", f"the partner's connection failed: {wire.closed(exc)}")
        except Exception as exc:  # a sandbox bug: the partner still gets a final answer
            log.error("sip.call_failed", call_sid=call.sid, error=type(exc).__name__)
            with contextlib.suppress(OSError):
                self.reply(500, "Server Internal Error")
            call.end("failed", f"the sandbox failed: {type(exc).__name__}")
        finally:
            self._close()
            if not call.done.is_set():
                call.end("failed", self.leg.detail or "ended")

    async def _refuse(self, admission: outbound.Admission) -> None:
        headers: list[tuple[str, str]] = []
        if admission.challenge:
            headers.append(("Proxy-Authenticate", admission.challenge))
        elif admission.code == 403:
            headers.append(("X-Exotel-ErrorCode", "4001"))
        self.reply(admission.code, admission.reason, headers=headers)
        self._close()
        outcome = "challenged" if admission.code == 407 else "rejected"
        self.leg.outcome, self.leg.detail = outcome, admission.reason
        status = "failed"
        self.call.end(status, admission.reason)

    def _close(self) -> None:
        """After a final refusal: the transaction is done here, its ACK is absorbed, and a
        new INVITE with the same Call-ID (the answer to a challenge) is a new call, whose
        dialog this one never removes."""
        if self.gateway.dialogs.get(self.invite.call_id) is self.dialog:
            del self.gateway.dialogs[self.invite.call_id]

    async def _ring(self) -> None:
        """The PSTN phone: rings, then answers, is busy, never answers or is absent."""
        number = self.invite.user
        if not INDIAN.fullmatch(number):
            self.leg.outcome = "rejected"
            reason = "Not Found"
            self.call.event("Exotel", "PSTN", f"{number}: not an Indian number in E.164")
            self.reply(404, reason)
            self._close()
            self.call.end(
                "failed", f"{number!r} is not an Indian number in E.164 (+91 and ten digits)"
            )
            return
        phone = self.gateway.pstn.get(number)
        self.call.event("Exotel", "PSTN", f"call {number}")
        if phone.behaviour == "unreachable":
            self.call.event("PSTN", "Exotel", "subscriber absent")
            await self._final(480, "Temporarily Unavailable", "failed", "the number is unreachable")
            return
        if phone.behaviour == "busy":
            self.call.event("PSTN", "Exotel", "busy")
            await self._final(486, "Busy Here", "busy", "the number is busy")
            return
        self.reply(180, "Ringing")
        cancelled = await self._wait_cancel(phone.ring_s)
        if cancelled:
            return
        if phone.behaviour == "no-answer":
            self.call.event("PSTN", "Exotel", "no answer")
            await self._final(480, "Temporarily Unavailable", "no-answer", "no answer")
            return
        await self._answer(phone.hangup_after_s)

    async def _final(self, code: int, reason: str, status: str, detail: str) -> None:
        self.reply(code, reason)
        self._close()
        self.leg.outcome, self.leg.detail = status, detail
        self.call.end(status, detail)

    async def _wait_cancel(self, seconds: float) -> bool:
        """Ring for ``seconds``; True when the partner cancelled meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    request, writer = await self.dialog.requests.get()
                    if request.method != "CANCEL":
                        self._within(request, writer)
                        continue
                    self.call.event(self.label, "Exotel", "CANCEL")
                    writer.write(sip.reply(request, 200, "OK", to_tag=self.tag, server=USER_AGENT))
                    self.reply(487, "Request Terminated")
                    self._close()
                    self.leg.outcome, self.leg.detail = "cancelled", "the partner cancelled"
                    self.call.end("no-answer", "the partner cancelled before an answer")
                    return True
        except TimeoutError:
            return False

    async def _answer(self, hangup_after: float | None) -> None:
        offered = sdp.media(self.invite.body)
        media = rtp.Leg()
        await media.bind(self.gateway.settings.host)
        try:
            key = sdp.new_key() if offered.secure else None
            answer = sdp.answer(
                self.invite.body,
                self.gateway.settings.host,
                media.port,
                session=int(time.time()),
                key=key,
            )
            if answer is None:
                self.leg.outcome = "rejected"
                await self._final(488, "Not Acceptable Here", "failed", "no G.711 codec offered")
                return
            self.call.event("PSTN", "Exotel", "answered")
            self.reply(200, "OK", body=answer)
            self.leg.outcome, self.leg.answered_ms = "answered", self.call.now_ms()
            codec = offered.codecs[0]
            kind = "RTP"
            if key is not None and offered.key is not None:
                media.secure(key, offered.key)
                kind = "SRTP"
            playing: asyncio.Future[object] = asyncio.ensure_future(
                media.play(
                    codec, (offered.address or self.source, offered.port), hangup_after or 3600.0
                )
            )
            self.call.event("Exotel", self.label, f"{kind} {codec} both ways")
            ended: asyncio.Future[object] = asyncio.ensure_future(self._until_bye())
            done = await race(playing, ended)
            self.leg.media = media.figures.document()
            if said_true(ended, done):
                self.leg.ended_by = "partner"
            else:
                await self._hang_up()
            self.leg.ended_ms = self.call.now_ms()
            self.call.event("Exotel", "PSTN", "hang up")
            self.call.end("completed", f"answered; ended by {self.leg.ended_by}")
        finally:
            media.close()

    async def _until_bye(self) -> bool:
        """Answer the partner's requests until its BYE (True)."""
        while True:
            request, writer = await self.dialog.requests.get()
            if request.method == "ACK":
                self.call.event(self.label, "Exotel", "ACK")
                continue
            self.call.event(self.label, "Exotel", request.method)
            self._within(request, writer)
            if request.method == "BYE":
                return True

    def _within(self, request: sip.Incoming, writer: asyncio.StreamWriter) -> None:
        """Answer a request within the call, on the connection it came on: BYE, OPTIONS
        and INFO 200; a retransmitted INVITE nothing (its answer is on its way); anything
        else 405 with what is allowed."""
        if request.method in ("ACK", "INVITE") and request.to_tag is None:
            return
        code, reason, headers = answer_within(request.method)
        writer.write(
            sip.reply(request, code, reason, to_tag=self.tag, server=USER_AGENT, headers=headers)
        )
        self.call.event("Exotel", self.label, f"{code} {reason}")

    async def _hang_up(self) -> None:
        """The called party hung up: BYE to the partner within its dialog (RFC 3261 15.1.1)."""
        contact = self.invite.header("contact") or ""
        target = contact.partition("<")[2].partition(">")[0] if "<" in contact else contact
        local = self._local()
        route = tuple(("Route", hop) for hop in self.invite.values("record-route"))  # 12.1.1
        bye = sip.Request(
            "BYE",
            target or self.invite.uri,
            via=f"SIP/2.0/{self.transport.upper()} {local};branch={sip.branch()};rport",
            from_=f"{self.invite.header('to')};tag={self.tag}",
            to=self.invite.header("from") or "",
            call_id=self.invite.call_id,
            cseq=1,
            headers=route,
        )
        self.writer.write(bye.encode(USER_AGENT))
        self.call.event("Exotel", self.label, "BYE")
        self.leg.ended_by = "pstn"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                response = await self.dialog.responses.get()
                self.call.event(self.label, "Exotel", f"{response.code} {response.reason}")
