"""SIP messages, as far as a health check needs them: build a request, read a response.

Called by ``checking.probe``. Pure and small on purpose (no SIP library fitted: see
docs/checking.md, "Why the SIP part is hand-written"); every rule here cites RFC 3261:

- a request's start line, and the headers every request carries (section 8.1.1):
  Via with a ``z9hG4bK`` branch (8.1.1.7), Max-Forwards, From with a tag, To, Call-ID,
  CSeq, Contact (for INVITE), and Content-Length, which stream transports need (18.3);
- a response's status line and headers (7.2, 7.3), header names case-insensitive and in
  their compact forms too (7.3.3), several values of one header on separate lines or
  comma-separated (7.3.1);
- the ACK of a non-2xx final response reuses the INVITE's branch and To tag (17.1.1.3);
  the ACK of a 2xx and the BYE are new transactions within the dialog (13.2.2.4, 15.1.1);
  CANCEL copies the INVITE's Request-URI, Call-ID, From, To, CSeq number and Via (9.1).

SDP (RFC 4566) for an INVITE offers PCMA and PCMU with telephone-event (RFC 4733), as
Exotel does (docs/exotel-api.md, section 8), and over TLS offers SRTP with SDES keys
(RFC 4568), since Exotel pairs TLS signalling with SRTP media.
"""

from __future__ import annotations

import base64
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

CODECS = {0: "PCMU", 8: "PCMA"}  # static payload types, RFC 3551
EVENTS_PAYLOAD = 101  # dynamic payload type of telephone-event in the offer


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


@dataclass(frozen=True)
class Response:
    code: int
    reason: str
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lower-case full names
    body: str = ""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

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
        to = self.header("to") or ""
        match = re.search(r";\s*tag=([^;\s,]+)", to, re.IGNORECASE)
        return match[1] if match else None

    @property
    def cseq_method(self) -> str:
        return (self.header("cseq") or "").partition(" ")[2].strip().upper()


def parse_head(head: bytes) -> tuple[int, str, dict[str, tuple[str, ...]], int]:
    """A response's status line and headers (without the blank line): code, reason,
    headers, and the body's length from Content-Length. ``NotSip`` when it is not one."""
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    status = _STATUS.fullmatch(lines[0].strip())
    if status is None:
        raise NotSipError(f"the answer starts {printable(lines[0])}, not SIP/2.0 and a status code")
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for raw in lines[1:]:
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
    if not length_text.isdigit():
        raise NotSipError(f"Content-Length {length_text!r} is not a number")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise NotSipError(f"a body of {length} bytes is more than a SIP answer carries")
    reason = shown(status[2].decode("utf-8", "replace").strip())
    return int(status[1]), reason, {k: tuple(v) for k, v in headers.items()}, length


def printable(raw: bytes) -> str:
    text = raw[:40].decode("utf-8", "replace")
    return repr(text + ("..." if len(raw) > 40 else ""))


def shown(text: str, limit: int = 120) -> str:
    """The far end's words as a report may show them: control characters (a terminal's
    escape sequences) replaced, and cut to ``limit`` characters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def offer(address: str, port: int, *, secure: bool, session: int) -> str:
    """An SDP offer (RFC 4566, RFC 3264): one audio stream with PCMA, PCMU and
    telephone-event, sent and received; over TLS as SRTP with an SDES key (RFC 4568)."""
    family = "IP6" if ":" in address else "IP4"
    profile = "RTP/SAVP" if secure else "RTP/AVP"
    payloads = f"8 0 {EVENTS_PAYLOAD}"
    lines = [
        "v=0",
        f"o=reconciler {session} {session} IN {family} {address}",
        "s=reconciler check",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} {profile} {payloads}",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        f"a=rtpmap:{EVENTS_PAYLOAD} telephone-event/8000",
        f"a=fmtp:{EVENTS_PAYLOAD} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    if secure:
        key = base64.b64encode(secrets.token_bytes(30)).decode()  # 128-bit key + 112-bit salt
        lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    return "\r\n".join(lines) + "\r\n"


def chosen_codec(answer: str) -> str | None:
    """The codec an SDP answer chose: the first payload type of its first audio line
    that is a codec (not telephone-event), by name. None when there is no audio line."""
    names: dict[str, str] = {}
    formats: list[str] = []
    for line in answer.splitlines():
        if line.startswith("m=audio ") and not formats:
            formats = line.split()[3:]
        elif line.startswith("a=rtpmap:"):
            payload, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            names[payload] = encoding.partition("/")[0]
    for payload in formats:
        name = names.get(payload) or (CODECS.get(int(payload)) if payload.isdigit() else None)
        if name and name.lower() != "telephone-event":
            return name.upper()
    return None
