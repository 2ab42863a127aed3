"""RTP with G.711 (RFC 3550, RFC 3551): a leg's media, sent and measured.

Used by the sandbox for every answered leg. The caller's side plays a test tone in the
negotiated codec, 20 ms a packet, from the port its SDP offered (a far end that echoes
sends back to the sender, as SIPp's ``-rtp_echo`` does); it counts what comes back,
how much of it is its own tone, losses by sequence number and interarrival jitter
(RFC 3550 A.8). G.711 is encoded here with the ITU-T G.711 rules, as ``audioop`` is
gone from Python 3.13.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import struct
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field

import pylibsrtp

CLOCK = 8000  # G.711 samples a second
PACKET_MS = 20
SAMPLES = CLOCK * PACKET_MS // 1000  # 160 a packet
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
TONE_HZ = 1004.0  # the standard test tone: not a divisor of the packet, so packets differ
_HEADER = struct.Struct("!BBHII")


def _ulaw(sample: int) -> int:
    """ITU-T G.711 mu-law, from a 16-bit linear sample (the reference g711.c's rules)."""
    value, mask = sample >> 2, 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 0x21
    segment = max(0, value.bit_length() - 6)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _alaw(sample: int) -> int:
    """ITU-T G.711 A-law, from a 16-bit linear sample (the reference g711.c's rules)."""
    value, mask = sample >> 3, 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    segment = max(0, value.bit_length() - 5)
    if segment >= 8:
        return 0x7F ^ mask
    step = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> step) & 0x0F)) ^ mask


def encode(codec: str, samples: list[int]) -> bytes:
    law = _alaw if codec == "PCMA" else _ulaw
    return bytes(law(sample) for sample in samples)


def tone(codec: str, packet: int, hz: float = TONE_HZ, level: float = 0.3) -> bytes:
    """Packet number ``packet`` of a continuous sine tone, encoded."""
    start = packet * SAMPLES
    samples = [
        int(level * 32767 * math.sin(2 * math.pi * hz * (start + n) / CLOCK))
        for n in range(SAMPLES)
    ]
    return encode(codec, samples)


def _frame(codec: str, audio: Sequence[int], number: int) -> bytes:
    start = (number * SAMPLES) % len(audio)
    samples = [audio[(start + n) % len(audio)] for n in range(SAMPLES)]
    return encode(codec, samples)


class AudioError(ValueError):
    """A WAV file the caller cannot play; the message says what it must be."""


def wav(path: str) -> list[int]:
    """A WAV file's samples: 8 kHz, mono, 16-bit PCM, as G.711 carries them."""
    try:
        with wave.open(path, "rb") as sound:
            shape = (sound.getframerate(), sound.getnchannels(), sound.getsampwidth())
            frames = sound.readframes(sound.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read {path} as a WAV file: {exc}") from None
    if shape != (CLOCK, 1, 2):
        raise AudioError(
            f"{path} is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit: it must be "
            "8000 Hz, mono, 16-bit PCM (sox in.wav -r 8000 -c 1 -b 16 out.wav)"
        )
    if not frames:
        raise AudioError(f"{path} holds no audio")
    return list(struct.unpack(f"<{len(frames) // 2}h", frames))


def packet(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    """An RTP packet (RFC 3550 5.1): version 2, no padding, extension or CSRCs."""
    head = _HEADER.pack(0x80, payload_type & 0x7F, sequence & 0xFFFF, timestamp, ssrc)
    return head + payload


@dataclass(frozen=True)
class Parsed:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse(data: bytes) -> Parsed | None:
    """An RTP packet's fields, or None for anything else (RTCP, garbage)."""
    if len(data) < _HEADER.size or data[0] >> 6 != 2:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    offset = _HEADER.size + 4 * (first & 0x0F)
    if 72 <= second & 0x7F <= 76:  # RTCP (packet types 200-204) shares the port (RFC 5761)
        return None
    return Parsed(second & 0x7F, sequence, timestamp, ssrc, data[offset:])


@dataclass
class _Stream:
    """One SSRC's sequence and timing (RFC 3550 A.1, A.8)."""

    base: int  # the first sequence number seen
    highest: int  # the highest, extended with its wrap cycles
    received: int = 0
    transit: float | None = None
    jitter: float = 0.0  # in timestamp units

    def arrived(self, parsed: Parsed, now: float) -> None:
        self.received += 1
        delta = (parsed.sequence - self.highest) & 0xFFFF
        if 0 < delta < 0x8000:  # in order, perhaps after a gap (wraps count as cycles)
            self.highest += delta
        transit = now * CLOCK - parsed.timestamp
        if self.transit is not None:
            self.jitter += (abs(transit - self.transit) - self.jitter) / 16
        self.transit = transit

    @property
    def lost(self) -> int:
        return max(0, self.highest - self.base + 1 - self.received)


@dataclass
class Figures:
    """What one leg's media did, as the call record reports it."""

    codec: str
    srtp: bool = False
    sent: int = 0
    received: int = 0
    echoed: int = 0  # received packets that carry this side's own audio
    _streams: dict[int, _Stream] = field(default_factory=dict, repr=False)

    def arrived(self, parsed: Parsed, now: float, own: bool) -> None:
        self.received += 1
        self.echoed += own
        stream = self._streams.get(parsed.ssrc)
        if stream is None:
            stream = self._streams[parsed.ssrc] = _Stream(parsed.sequence, parsed.sequence)
        stream.arrived(parsed, now)

    @property
    def lost(self) -> int:
        """Of what the far end sent, by sequence number, over every stream it used."""
        return sum(stream.lost for stream in self._streams.values())

    @property
    def jitter_ms(self) -> float:
        """RFC 3550 A.8 interarrival jitter of the busiest stream."""
        if not self._streams:
            return 0.0
        busiest = max(self._streams.values(), key=lambda stream: stream.received)
        return round(busiest.jitter * 1000 / CLOCK, 3)

    def document(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "srtp": self.srtp,
            "packets_sent": self.sent,
            "packets_received": self.received,
            "own_tone_back": self.echoed,
            "lost": self.lost,
            "jitter_ms": self.jitter_ms,
        }


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, leg: Leg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.leg.srtp is not None:
            data = self.leg.srtp.open(data) or b""
        parsed = parse(data)
        if parsed is not None:
            own = hashlib.blake2s(parsed.payload, digest_size=8).digest() in self.leg.sent
            self.leg.figures.arrived(parsed, time.monotonic(), own)


class Srtp:
    """SRTP with SDES keys (RFC 3711, RFC 4568; AES_CM_128_HMAC_SHA1_80), by libsrtp:
    packets out sealed with this side's key; packets in opened with the far end's, or
    with this side's own when an echoing far end sends this side's packets back."""

    def __init__(self, local: bytes, remote: bytes) -> None:
        outbound = pylibsrtp.Policy(key=local, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self.out = pylibsrtp.Session(policy=outbound)
        self.ins = [
            pylibsrtp.Session(
                policy=pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
            )
            for key in (remote, local)
        ]
        self.failed = 0  # packets in that no key opens

    def seal(self, data: bytes) -> bytes:
        return bytes(self.out.protect(data))

    def open(self, data: bytes) -> bytes | None:
        for session in self.ins:
            try:
                return bytes(session.unprotect(data))
            except pylibsrtp.Error:
                continue
        self.failed += 1
        return None


class Leg:
    """One side's RTP for one call leg: bound before the offer (its port goes in the
    SDP), started once the answer names the far end and the codec; SRTP once
    :meth:`secure` is given both keys."""

    def __init__(self) -> None:
        self.figures = Figures("")
        self.sent: set[bytes] = set()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.srtp: Srtp | None = None

    def secure(self, local: bytes, remote: bytes) -> None:
        self.srtp = Srtp(local, remote)
        self.figures.srtp = True

    async def bind(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=(host, 0)
        )
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    async def play(
        self,
        codec: str,
        far: tuple[str, int],
        seconds: float,
        audio: Sequence[int] | None = None,
    ) -> Figures:
        """Send ``seconds`` of ``audio`` (8 kHz linear samples, looped), or of the test
        tone, to ``far``, paced by the clock; then wait a moment for the last echoes."""
        self.figures.codec = codec
        if self.transport is None:
            return self.figures
        payload_type = PAYLOAD_TYPES[codec]
        ssrc = secrets.randbits(32)
        sequence, start = secrets.randbits(15), time.monotonic()
        count = int(seconds * 1000 / PACKET_MS)
        for number in range(count):
            payload = tone(codec, number) if not audio else _frame(codec, audio, number)
            self.sent.add(hashlib.blake2s(payload, digest_size=8).digest())
            data = packet(payload_type, sequence + number, number * SAMPLES, ssrc, payload)
            self.transport.sendto(self.srtp.seal(data) if self.srtp else data, far)
            self.figures.sent += 1
            delay = start + (number + 1) * PACKET_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.sleep(0.1)
        return self.figures

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
