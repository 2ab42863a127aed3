"""SIP over a stream: one exchange's identities, and reading its responses.

Used by ``checking.probe`` (OPTIONS) and ``checking.invite``. RFC 3261 18.3: over TCP
and TLS a message ends where its Content-Length says; the far end may send CRLF
keep-alives and requests of its own on the same connection, which are skipped.
"""

from __future__ import annotations

import asyncio
import ssl

from reconciler.checking import sip
from reconciler.checking.results import Result, Settings

STREAM_LIMIT = sip.MAX_HEADER_BYTES


def context(ca: str | None, *, verify: bool) -> ssl.SSLContext:
    """TLS as Exotel's side would use it: verified against the system's CAs, or ``ca``."""
    if not verify:
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        return unverified
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot read the CA file {ca}: {exc}") from exc


class Dialog:
    """The identities of one exchange on one connection (RFC 3261 8.1.1)."""

    def __init__(self, result: Result, writer: asyncio.StreamWriter, settings: Settings) -> None:
        destination = result.destination
        local = writer.get_extra_info("sockname")
        self.local_host, self.local_port = str(local[0]), int(local[1])
        self.sent_by = (
            f"[{self.local_host}]:{self.local_port}"
            if ":" in self.local_host
            else f"{self.local_host}:{self.local_port}"
        )
        self.transport = destination.transport
        self.target = destination.uri.partition(";")[0]
        self.call_id = f"{sip.token()}@reconciler"
        self.tag = sip.token(6)
        self.writer = writer
        self.user_agent = settings.user_agent

    def via(self, branch: str) -> str:
        return f"{sip.SIP_VERSION}/{self.transport.upper()} {self.sent_by};branch={branch};rport"

    @property
    def from_(self) -> str:
        return f'"reconciler check" <sip:check@{self.sent_by}>;tag={self.tag}'

    @property
    def contact(self) -> str:
        return f"<sip:check@{self.sent_by};transport={self.transport}>"

    def uri(self, user: str | None = None) -> str:
        return f"sip:{user + '@' if user else ''}{self.target};transport={self.transport}"

    async def send(self, request: sip.Request) -> None:
        self.writer.write(request.encode(self.user_agent))
        await self.writer.drain()


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
