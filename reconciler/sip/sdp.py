"""SDP for one audio stream (RFC 4566), offered and answered (RFC 3264).

Pure. Exotel offers PCMA, then PCMU, and telephone-event (RFC 4733), 20 ms a packet; over
TLS as SRTP with an SDES key (RFC 4568) (docs/exotel-api.md, section 8). The sandbox
offers the same on the calls it places and answers the partners' offers with the first
G.711 codec they list; ``checking`` offers it on its test calls.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass

CODECS = {0: "PCMU", 8: "PCMA"}  # static payload types, RFC 3551
PAYLOADS = {name: number for number, name in CODECS.items()}
EVENTS_PAYLOAD = 101  # dynamic payload type of telephone-event in the offer


def _family(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


SUITE = "AES_CM_128_HMAC_SHA1_80"  # the one crypto suite Exotel offers (RFC 4568 6.2)
KEY_BYTES = 30  # its master key (16) and salt (14)


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def offer(
    address: str,
    port: int,
    *,
    secure: bool,
    session: int,
    name: str = "reconciler",
    key: bytes | None = None,
) -> str:
    """An offer: one audio stream with PCMA, PCMU and telephone-event, sent and
    received; over TLS as SRTP with an SDES key (RFC 4568): ``key``, or a new one."""
    family = _family(address)
    profile = "RTP/SAVP" if secure else "RTP/AVP"
    lines = [
        "v=0",
        f"o=reconciler {session} {session} IN {family} {address}",
        f"s={name}",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} {profile} 8 0 {EVENTS_PAYLOAD}",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        f"a=rtpmap:{EVENTS_PAYLOAD} telephone-event/8000",
        f"a=fmtp:{EVENTS_PAYLOAD} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    if secure:
        inline = base64.b64encode(key or new_key()).decode()  # 128-bit key + 112-bit salt
        lines.append(f"a=crypto:1 {SUITE} inline:{inline}")
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class Media:
    """What a session description says of its audio: where to send it, in what."""

    address: str | None
    port: int
    codecs: tuple[str, ...]  # G.711 codecs by name, in the order listed
    secure: bool
    key: bytes | None = None  # the SDES master key and salt of an AES_CM_128_HMAC_SHA1_80 line
    tag: str = "1"  # that line's tag, which an answer repeats (RFC 4568 6.1)


def media(description: str) -> Media:
    """The first audio stream of a description (offer or answer)."""
    address: str | None = None
    port, secure = 0, False
    formats: list[str] = []
    key: bytes | None = None
    tag = "1"
    names: dict[str, str] = {}
    session_address = None
    in_audio = False
    for raw in description.splitlines():
        line = raw.strip()
        if line.startswith("c=") and len(line.split()) >= 3:
            if in_audio:
                address = line.split()[2]
            elif not formats:
                session_address = line.split()[2]
        elif line.startswith("m="):
            if in_audio:
                break  # only the first audio stream
            parts = line[2:].split()
            digits = len(parts) >= 3 and parts[1].isascii() and parts[1].isdigit()
            if parts and parts[0] == "audio" and digits and 0 < int(parts[1]) < 65536:
                in_audio, port, formats = True, int(parts[1]), parts[3:]
                secure = "SAVP" in parts[2]
        elif line.startswith("a=rtpmap:"):
            payload, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            names[payload] = encoding.partition("/")[0].upper()
        elif line.startswith("a=crypto:") and in_audio and key is None:
            key = _sdes_key(line)
            if key is not None:
                tag = line[len("a=crypto:") :].split()[0]
    codecs = []
    for payload in formats:
        number = payload.isascii() and payload.isdigit()
        name = names.get(payload) or (CODECS.get(int(payload)) if number else None)
        if name in PAYLOADS:
            codecs.append(name)
    target = _ip(address or session_address)
    return Media(target, port, tuple(codecs), secure, key if secure else None, tag)


def _ip(address: str | None) -> str | None:
    """A connection address this side can send to: an IP literal (a host name would mean
    a DNS lookup for every packet)."""
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _sdes_key(line: str) -> bytes | None:
    """The master key and salt of ``a=crypto:TAG AES_CM_128_HMAC_SHA1_80 inline:KEY[|...]``."""
    parts = line.split()
    if len(parts) < 3 or parts[1] != SUITE or not parts[2].startswith("inline:"):
        return None
    try:
        raw = base64.b64decode(parts[2][len("inline:") :].split("|")[0], validate=True)
    except ValueError:
        return None
    return raw if len(raw) == KEY_BYTES else None


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
        number = payload.isascii() and payload.isdigit()
        name = names.get(payload) or (CODECS.get(int(payload)) if number else None)
        if name and name.lower() != "telephone-event":
            return name.upper()
    return None


def answer(
    offered: str, address: str, port: int, *, session: int, key: bytes | None = None
) -> str | None:
    """An answer taking the offer's first G.711 codec (RFC 3264 6.1); for an SRTP offer
    with an SDES key, SRTP with ``key`` (RFC 4568 6.1). None when the offer has no G.711
    codec, or asks for SRTP without a key this side can use (the call is refused 488)."""
    found = media(offered)
    if not found.codecs or (found.secure and (found.key is None or key is None)):
        return None
    codec = found.codecs[0]
    family = _family(address)
    lines = [
        "v=0",
        f"o=sandbox {session} {session} IN {family} {address}",
        "s=sandbox",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/{'SAVP' if found.secure else 'AVP'} {PAYLOADS[codec]}",
        f"a=rtpmap:{PAYLOADS[codec]} {codec}/8000",
        "a=ptime:20",
        "a=sendrecv",
    ]
    if found.secure and key is not None:
        inline = base64.b64encode(key).decode()
        lines.append(f"a=crypto:{found.tag} {SUITE} inline:{inline}")
    return "\r\n".join(lines) + "\r\n"
