"""SIP over a stream (TCP or TLS): reading whole messages, closing politely.

RFC 3261 18.3: over a stream a message ends where its Content-Length says; either end
may send CRLF keep-alives (RFC 5626 4.4.1) between messages. Used by ``checking`` (which
waits for responses and skips the requests a far end sends meanwhile) and by the
sandbox's SIP gateway (which reads both).
"""

from __future__ import annotations

import asyncio
import ssl

from reconciler.sip import message as sip

STREAM_LIMIT = sip.MAX_HEADER_BYTES


async def read_message(reader: asyncio.StreamReader) -> sip.Incoming | sip.Response | None:
    """The next message on a stream, request or response; None when the far end closed
    it between messages. CRLF keep-alives are skipped."""
    while True:
        first = await reader.readline()
        if not first:
            return None
        if first in (b"\r\n", b"\n"):
            continue
        rest = await reader.readuntil(b"\r\n\r\n") if not first.endswith(b"\r\n\r\n") else b""
        head = (first + rest)[:-4] if rest else first.rstrip(b"\r\n")
        if first.startswith(b"SIP/2.0 "):
            code, reason, headers, length = sip.parse_head(head)
            body = await reader.readexactly(length) if length else b""
            return sip.Response(code, reason, headers, body.decode("utf-8", "replace"))
        method, uri, headers, length = sip.parse_request_head(head)
        body = await reader.readexactly(length) if length else b""
        return sip.Incoming(method, uri, headers, body.decode("utf-8", "replace"))


async def read_response(reader: asyncio.StreamReader) -> sip.Response:
    """The next response on a stream (RFC 3261 18.3: framed by Content-Length). Requests
    the far end sends meanwhile (its own OPTIONS keep-alives) and CRLF pings are skipped."""
    while True:
        first = await reader.readline()
        if not first:
            raise ConnectionResetError("closed the connection without answering")
        if first in (b"\r\n", b"\n"):
            continue
        if not first.startswith(b"SIP/2.0 ") and first.rstrip().endswith(b"SIP/2.0"):
            await _skip_message(reader)  # a request to us: not what we wait for
            continue
        if not first.startswith(b"SIP/2.0 "):
            raise sip.NotSipError(
                f"the answer starts {sip.printable(first.rstrip())}, not SIP/2.0 and a status code"
            )
        rest = await reader.readuntil(b"\r\n\r\n") if not first.endswith(b"\r\n\r\n") else b""
        code, reason, headers, length = sip.parse_head(first + rest[:-4])
        body = await reader.readexactly(length) if length else b""
        return sip.Response(code, reason, headers, body.decode("utf-8", "replace"))


async def _skip_message(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l") and value.strip().isdigit():
            await reader.readexactly(int(value.strip()))


async def final(
    reader: asyncio.StreamReader, call_id: str, method: str, seen: list[sip.Response]
) -> sip.Response:
    """Responses until the final one to ``method`` of this call; provisional ones in ``seen``."""
    while True:
        response = await read_response(reader)
        if response.header("call-id") != call_id or response.cseq_method != method:
            continue
        if response.final:
            return response
        seen.append(response)


def ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    return str(exc) or type(exc).__name__


def closed(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed the connection in the middle of an answer"
    if isinstance(exc, asyncio.LimitOverrunError):
        return f"sent more than {STREAM_LIMIT} bytes without ending an answer's headers"
    return str(exc) if str(exc) else "closed the connection"


CLOSE_GRACE = 1.0  # seconds a connection gets to close politely before it is cut


async def close(writer: asyncio.StreamWriter) -> None:
    """Close politely, but never wait on the far end: a TLS peer that never answered the
    handshake never answers its close either, so after ``CLOSE_GRACE`` the socket is cut."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
