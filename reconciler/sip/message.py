"""SIP messages: build a request, read a response; read a request, build its response.

Used by ``checking`` (the prober: requests out, responses in) and by the sandbox's SIP
gateway (both ways). Pure and small on purpose (no SIP library fits: see docs/checking.md,
"Why the SIP part is hand-written"); every rule here cites RFC 3261:

- a request's start line, and the headers every request carries (section 8.1.1):
  Via with a ``z9hG4bK`` branch (8.1.1.7), Max-Forwards, From with a tag, To, Call-ID,
  CSeq, Contact (for INVITE), and Content-Length, which stream transports need (18.3);
- a response's status line and headers (7.2, 7.3), header names case-insensitive and in
  their compact forms too (7.3.3), several values of one header on separate lines or
  comma-separated (7.3.1);
- the ACK of a non-2xx final response reuses the INVITE's branch and To tag (17.1.1.3);
  the ACK of a 2xx and the BYE are new transactions within the dialog (13.2.2.4, 15.1.1);
  CANCEL copies the INVITE's Request-URI, Call-ID, From, To, CSeq number and Via (9.1).

SDP is ``sip.sdp``'s, digest authentication ``sip.digest``'s, framing on a stream
``sip.stream``'s.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7: branches that start with it are unique per request
MAX_HEADER_BYTES = 64 * 1024  # a response whose headers exceed this is not a SIP answer we read
MAX_BODY_BYTES = 64 * 1024

# RFC 3261 7.3.3 and the IANA registry: compact form -> full name.
COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
_STATUS = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ?([^\r\n]*)")


class NotSipError(ValueError):
    """The peer answered with bytes that are not a SIP response."""


def token(size: int = 10) -> str:
    return secrets.token_hex(size)


def branch() -> str:
    return MAGIC_COOKIE + token(8)


@dataclass(frozen=True)
class Request:
    """One request of a dialog, written as bytes by ``encode``."""

    method: str
    uri: str
    via: str  # "SIP/2.0/TCP 10.0.0.1:53211;branch=z9hG4bK...;rport"
    from_: str  # '"reconciler check" <sip:check@10.0.0.1>;tag=...'
    to: str
    call_id: str
    cseq: int
    contact: str | None = None
    headers: Sequence[tuple[str, str]] = ()
    body: str = ""
    content_type: str = "application/sdp"

    def encode(self, user_agent: str) -> bytes:
        lines = [
            f"{self.method} {self.uri} {SIP_VERSION}",
            f"Via: {self.via}",
            "Max-Forwards: 70",
            f"From: {self.from_}",
            f"To: {self.to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {self.method}",
        ]
        if self.contact:
            lines.append(f"Contact: {self.contact}")
        if self.method == "OPTIONS":
            lines.append("Accept: application/sdp")
        lines.append(f"User-Agent: {user_agent}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        body = self.body.encode()
        if body:
            lines.append(f"Content-Type: {self.content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Headed:
    """Reading a received message's headers (lower-case full names, values in order)."""

    headers: Mapping[str, tuple[str, ...]]

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def values(self, name: str) -> tuple[str, ...]:
        """Every value of a header, on separate lines or comma-separated (7.3.1)."""
        return tuple(
            part.strip()
            for value in self.headers.get(name.lower(), ())
            for part in _split_commas(value)
        )


@dataclass(frozen=True)
class Response(_Headed):
    code: int
    reason: str
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lower-case full names
    body: str = ""

    @property
    def final(self) -> bool:
        return self.code >= 200

    @property
    def software(self) -> str | None:
        """What the far end says it is: ``Server`` (a UAS), else ``User-Agent``."""
        said = self.header("server") or self.header("user-agent")
        return shown(said) if said else None

    @property
    def to_tag(self) -> str | None:
        return tag_of(self.header("to") or "")

    @property
    def cseq_method(self) -> str:
        return (self.header("cseq") or "").partition(" ")[2].strip().upper()


def _header_lines(lines: Sequence[bytes]) -> tuple[dict[str, tuple[str, ...]], int]:
    """Header lines (after the start line) -> lower-case full names and their values, and
    the body's length from Content-Length."""
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if line[:1] in (" ", "\t") and last is not None:  # a folded line continues (7.3.1)
            headers[last][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise NotSipError(f"header line {printable(raw)} has no colon")
        key = name.strip().lower()
        key = COMPACT.get(key, key)
        headers.setdefault(key, []).append(value.strip())
        last = key
    length_text = (headers.get("content-length") or ["0"])[0]
    if not (length_text.isascii() and length_text.isdigit()):
        raise NotSipError(f"Content-Length {length_text!r} is not a number")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise NotSipError(f"a body of {length} bytes is more than a SIP message carries")
    return {k: tuple(v) for k, v in headers.items()}, length


def _lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")


def parse_head(head: bytes) -> tuple[int, str, dict[str, tuple[str, ...]], int]:
    """A response's status line and headers (without the blank line): code, reason,
    headers, and the body's length from Content-Length. ``NotSip`` when it is not one."""
    lines = _lines(head)
    status = _STATUS.fullmatch(lines[0].strip())
    if status is None:
        raise NotSipError(f"the answer starts {printable(lines[0])}, not SIP/2.0 and a status code")
    headers, length = _header_lines(lines[1:])
    reason = shown(status[2].decode("utf-8", "replace").strip())
    return int(status[1]), reason, headers, length


@dataclass(frozen=True)
class Incoming(_Headed):
    """A request as a UAS receives it (RFC 3261 7.1)."""

    method: str
    uri: str
    headers: Mapping[str, tuple[str, ...]]
    body: str = ""

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "").partition(" ")
        return (int(number) if number.isdigit() else 0), method.strip().upper()

    @property
    def to_tag(self) -> str | None:
        return tag_of(self.header("to") or "")

    @property
    def from_tag(self) -> str | None:
        return tag_of(self.header("from") or "")

    @property
    def user(self) -> str:
        """The Request-URI's user part: the number called."""
        target = self.uri.partition(":")[2]
        return target.partition("@")[0] if "@" in target else ""


def tag_of(value: str) -> str | None:
    match = re.search(r";\s*tag=([^;\s,>]+)", value, re.IGNORECASE)
    return match[1] if match else None


def _split_commas(value: str) -> list[str]:
    """Split on commas outside quotes and angle brackets (7.3.1)."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return [part for part in parts if part.strip()]


_REQUEST_LINE = re.compile(rb"([A-Za-z]+) (\S+) SIP/2\.0")


def parse_request_head(head: bytes) -> tuple[str, str, dict[str, tuple[str, ...]], int]:
    """A request's start line and headers: method, Request-URI, headers, body length."""
    lines = _lines(head)
    start = _REQUEST_LINE.fullmatch(lines[0].strip())
    if start is None:
        raise NotSipError(f"the message starts {printable(lines[0])}, not a SIP request line")
    headers, length = _header_lines(lines[1:])
    return start[1].decode().upper(), start[2].decode("utf-8", "replace"), headers, length


def reply(
    request: Incoming,
    code: int,
    reason: str,
    *,
    to_tag: str | None,
    server: str,
    headers: Sequence[tuple[str, str]] = (),
    body: str = "",
    content_type: str = "application/sdp",
) -> bytes:
    """A response to ``request`` (RFC 3261 8.2.6.2): its Vias, From, Call-ID and CSeq
    copied; its To with this side's tag added when it had none (not on a 100)."""
    to = request.header("to") or ""
    if to_tag and code != 100 and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    lines = [f"{SIP_VERSION} {code} {reason}"]
    lines += [f"Via: {via}" for via in request.headers.get("via", ())]
    if request.method == "INVITE" and 100 < code < 300:  # 12.1.1: the route set, back
        lines += [f"Record-Route: {hop}" for hop in request.headers.get("record-route", ())]
    lines += [
        f"From: {request.header('from') or ''}",
        f"To: {to}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.header('cseq') or ''}",
        f"Server: {server}",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    encoded = body.encode()
    if encoded:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(encoded)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded


def printable(raw: bytes) -> str:
    text = raw[:40].decode("utf-8", "replace")
    return repr(text + ("..." if len(raw) > 40 else ""))


def shown(text: str, limit: int = 120) -> str:
    """The far end's words as a report may show them: control characters (a terminal's
    escape sequences) replaced, and cut to ``limit`` characters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
