"""One destination, probed the way Exotel would reach it: DNS, TCP, TLS, SIP.

Called by ``pipeline.checking`` (``reconciler check``, ``reconciler trace --probe``) for
every destination URI, concurrently. Each step's outcome is kept, so the report can say
where a destination fails, not only that it does:

1. DNS: an FQDN resolves (A and AAAA; the port is given, so no SRV lookup, RFC 3263
   4.2), unless ``--resolve HOST:PORT:ADDRESS`` names the address, as curl does;
2. TCP connect, to each address in turn until one accepts;
3. for ``transport=tls``, a handshake verified against the system's CAs (or ``--ca``) with
   the host name matched; the protocol version and the certificate's expiry are reported
   (a warning within ``EXPIRY_WARNING_DAYS``). When verification fails, the SIP steps still
   run over an unverified connection, so the report says what else is wrong;
4. SIP ``OPTIONS``: any final response proves a SIP server; 200 is healthy, and a 4xx
   means reachable but rejecting OPTIONS, which many SBCs do;
5. with ``--invite``, an ``INVITE`` to one of the trunk's DIDs offering PCMA and PCMU,
   then ACK and BYE after an answer, ACK after a refusal, CANCEL when it only rings.

For a trunk whose partner is LiveKit, OPTIONS proves only that its SIP server runs
(``checking.livekit``), and the INVITE is dressed and judged as LiveKit would take
Exotel's.

``timeout`` bounds steps 1 to 4 together, and separately the INVITE's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.checking import invite, livekit
from reconciler.checking.results import (
    EXPIRY_WARNING_DAYS,
    Answer,
    Call,
    Destination,
    Result,
    Settings,
    Tls,
)
from reconciler.checking.wire import Dialog, context
from reconciler.sip import message as sip
from reconciler.sip import stream as wire
from reconciler.sip.stream import STREAM_LIMIT, closed, ssl_reason


class _EndedError(Exception):
    """A step failed in a way that ends the probe; the finding is already recorded."""


async def probe(
    destination: Destination,
    settings: Settings,
    *,
    call: Call | None = None,
    verified: ssl.SSLContext | None = None,
) -> Result:
    """Every step for one destination; never raises for what the far end does."""
    result = Result(destination)
    started = time.perf_counter()
    stage = "resolving the name"
    try:
        async with asyncio.timeout(settings.timeout):
            stage = "resolving the name"
            await _resolve(result, settings)
            stage = "connecting"
            reader, writer = await _connect(result)
            try:
                if destination.transport == "tls":
                    stage = "in the TLS handshake"
                    reader, writer = await _handshake(result, reader, writer, settings, verified)
                stage = "waiting for the answer to OPTIONS"
                await _options(result, reader, writer, settings)
                partner = destination.partner
                if partner is not None and partner.livekit:
                    livekit.options(result, partner, invited=call is not None)
            except BaseException:  # out of time, or stopped: no waiting on the far end
                writer.transport.abort()
                raise
            await wire.close(writer)
        if call is not None:
            stage = "calling"
            await invite.call(result, call, settings, verified)
    except TimeoutError:
        result.error(f"no answer within {settings.timeout:g} s {stage}")
    except _EndedError:
        pass
    if call is not None and stage != "calling":
        result.note(f"--invite: no INVITE was sent, since the probe stopped {stage}")
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


async def _resolve(result: Result, settings: Settings) -> None:
    destination = result.destination
    forced = settings.resolve.get((destination.host, destination.port))
    if forced is not None:
        result.addresses, result.resolved_by = (forced,), "--resolve"
        return
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(destination.host)
        result.addresses, result.resolved_by = (destination.host,), "literal"
        return
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(destination.host, destination.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        result.error(f"{destination.host} does not resolve ({exc.strerror or exc})")
        raise _EndedError from exc
    addresses: list[str] = []
    for *_, sockaddr in found:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    result.addresses = tuple(addresses)


async def _connect(result: Result) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = result.destination.port
    failures = []
    for address in result.addresses:
        started = time.perf_counter()
        try:
            opened = await asyncio.open_connection(address, port, limit=STREAM_LIMIT)
        except OSError as exc:
            reason = (
                "connection refused"
                if isinstance(exc, ConnectionRefusedError)
                else (exc.strerror or str(exc))
            )
            failures.append(f"{address}: {reason}")
            continue
        result.address = address
        result.connect_ms = (time.perf_counter() - started) * 1000
        if failures:
            result.warn(f"TCP port {port} closed on {', '.join(failures)}")
        return opened
    result.error(f"TCP port {port} does not accept connections ({'; '.join(failures)})")
    raise _EndedError


async def _handshake(
    result: Result,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: Settings,
    verified: ssl.SSLContext | None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Verify the certificate as Exotel would; if it fails, go on unverified (on a new
    connection, since the failed handshake closed this one) so SIP is still checked."""
    host = result.destination.host
    checked = verified or context(settings.ca, verify=True)
    try:
        await writer.start_tls(checked, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        writer.close()
        reason = exc.verify_message or str(exc)
        result.error(f"the TLS certificate is not accepted for {host}: {reason}")
        result.tls = Tls(None, verified=False, not_after=None, days_left=None, problem=reason)
        return await _unverified(result)
    except (ssl.SSLError, ConnectionError) as exc:
        writer.close()
        result.error(f"the TLS handshake failed: {ssl_reason(exc)}")
        raise _EndedError from exc
    peer = writer.get_extra_info("ssl_object")
    version = peer.version() if peer is not None else None
    certificate = writer.get_extra_info("peercert") or {}
    not_after, days_left = _expiry(certificate, settings.now)
    result.tls = Tls(version, verified=True, not_after=not_after, days_left=days_left)
    if days_left is not None and days_left < EXPIRY_WARNING_DAYS:
        result.warn(
            f"the TLS certificate expires on {not_after}, in {days_left} days: renew it "
            f"(warned {EXPIRY_WARNING_DAYS} days ahead)"
        )
    return reader, writer


async def _unverified(result: Result) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert result.address is not None
    try:
        reader, writer = await asyncio.open_connection(
            result.address,
            result.destination.port,
            ssl=context(None, verify=False),
            server_hostname=result.destination.host,
            limit=STREAM_LIMIT,
        )
    except (OSError, ssl.SSLError) as exc:
        result.error(f"the TLS handshake failed without verification too: {ssl_reason(exc)}")
        raise _EndedError from exc
    peer = writer.get_extra_info("ssl_object")
    if result.tls is not None and peer is not None:
        result.tls = Tls(peer.version(), False, None, None, result.tls.problem)
    return reader, writer


def _expiry(certificate: Mapping[str, Any], now: datetime | None) -> tuple[str | None, int | None]:
    text = certificate.get("notAfter")
    if not isinstance(text, str):
        return None, None
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(text), UTC)
    days = (expires - (now or datetime.now(UTC))).days
    return expires.date().isoformat(), days


async def _options(
    result: Result,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: Settings,
) -> None:
    dialog = Dialog(result, writer, settings)
    request = sip.Request(
        "OPTIONS",
        dialog.uri(),
        via=dialog.via(sip.branch()),
        from_=dialog.from_,
        to=f"<{dialog.uri()}>",
        call_id=dialog.call_id,
        cseq=1,
        contact=dialog.contact,
    )
    started = time.perf_counter()
    try:
        await dialog.send(request)
        response = await wire.final(reader, dialog.call_id, "OPTIONS", [])
    except sip.NotSipError as exc:
        result.error(f"not a SIP server: {exc}")
        raise _EndedError from exc
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        result.error(f"no SIP answer: the far end {closed(exc)}")
        raise _EndedError from exc
    rtt = (time.perf_counter() - started) * 1000
    result.answer = Answer(response.code, response.reason, response.software, rtt)
    said = f"{response.code} {response.reason}".strip()
    if response.code >= 500:
        result.warn(f"answers OPTIONS with {said}: a SIP server, but not taking calls now")
    elif response.code >= 300:
        result.note(f"reachable; answers OPTIONS with {said}, as many SBCs do")
