"""The SIP package's pure parts against published vectors: RFC 2617's digest example,
the reference G.711 encoder (Python's own ``audioop`` while it exists), and RFC 3261's
rules for a response to a request."""

from __future__ import annotations

import math
import struct
import warnings

import pytest

from reconciler.sip import digest, rtp, sdp
from reconciler.sip import message as sip


def test_digest_matches_rfc_2617_worked_example() -> None:
    """RFC 2617 3.5: Mufasa's request and its published response value."""
    value = digest.response(
        secret=digest.ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        cnonce="0a4f113b",
        nc="00000001",
    )
    assert value == "6629fae49393a05397450978507c4ef1"


def test_digest_round_trip_and_every_refusal_says_why() -> None:
    realm, nonce = "AC1.pstn.exotel.com", "abc123"
    challenge = digest.challenge(realm, nonce=nonce)
    known = {"bot": digest.ha1("bot", realm, "s3cret_pw")}
    uri = "sip:+919876543210@AC1.pstn.exotel.com"

    def check(password: str, *, user: str = "bot", nonces: set[str] | None = None) -> str:
        header = digest.authorization(
            challenge, username=user, password=password, method="INVITE", uri=uri
        )
        verdict = digest.verify(
            header, method="INVITE", realm=realm, nonces=nonces or {nonce}, secrets_=known
        )
        assert verdict.ok == (verdict.why == "authenticated")
        assert "s3cret" not in verdict.why
        assert "wrong_pw" not in verdict.why
        return verdict.why

    assert check("s3cret_pw") == "authenticated"
    assert check("wrong_pw") == "wrong password for bot"
    assert check("s3cret_pw", user="other") == "no credential other on this trunk"
    assert check("s3cret_pw", nonces={"another"}) == "stale or unknown nonce"
    assert digest.params('Digest realm="a, b", nonce=x')["realm"] == "a, b"


def test_g711_matches_the_reference_encoder_for_every_sample() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop left Python in 3.13")
    every = list(range(-32768, 32768))
    linear = struct.pack(f"<{len(every)}h", *every)
    assert rtp.encode("PCMU", every) == audioop.lin2ulaw(linear, 2)
    assert rtp.encode("PCMA", every) == audioop.lin2alaw(linear, 2)


def test_rtp_packets_round_trip_and_rtcp_is_not_media() -> None:
    payload = rtp.tone("PCMA", 3)
    assert len(payload) == rtp.SAMPLES == 160
    packet = rtp.packet(8, 65535, 480, 0xDEADBEEF, payload)
    parsed = rtp.parse(packet)
    assert parsed == rtp.Parsed(8, 65535, 480, 0xDEADBEEF, payload)
    assert rtp.parse(b"\x80\xc8" + bytes(26)) is None  # an RTCP sender report
    assert rtp.parse(b"junk") is None
    # A 1004 Hz tone is not periodic in 160 samples: consecutive packets differ.
    assert rtp.tone("PCMU", 0) != rtp.tone("PCMU", 1)
    assert max(abs(math.sin(2 * math.pi * rtp.TONE_HZ * n / rtp.CLOCK)) for n in range(8)) > 0


def test_an_answer_takes_the_offers_first_g711_codec() -> None:
    offer = sdp.offer("10.0.0.1", 40000, secure=False, session=1)
    found = sdp.media(offer)
    assert found == sdp.Media("10.0.0.1", 40000, ("PCMA", "PCMU"), secure=False)
    answer = sdp.answer(offer, "127.0.0.1", 5004, session=2)
    assert answer is not None
    assert sdp.media(answer) == sdp.Media("127.0.0.1", 5004, ("PCMA",), secure=False)
    pcmu_first = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 0 8\r\n"
    assert sdp.media(sdp.answer(pcmu_first, "127.0.0.1", 1, session=3) or "").codecs == ("PCMU",)
    assert (
        sdp.answer("v=0\r\nm=audio 7000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n", "h", 1, session=4)
        is None
    )
    assert sdp.media(sdp.offer("10.0.0.1", 1, secure=True, session=1)).secure


def test_a_response_copies_what_rfc_3261_says_and_adds_the_to_tag() -> None:
    head = (
        b"INVITE sip:+918040264208@sbc.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb\r\n"
        b"f: <sip:+919876543210@x>;tag=abc\r\n"
        b"t: <sip:+918040264208@sbc.example.com>\r\n"
        b"i: call-1\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"l: 0"
    )
    method, uri, headers, length = sip.parse_request_head(head)
    request = sip.Incoming(method, uri, headers)
    assert (method, length, request.user, request.cseq) == (
        "INVITE",
        0,
        "+918040264208",
        (7, "INVITE"),
    )
    assert len(request.values("via")) == 2
    assert request.from_tag == "abc"
    assert request.to_tag is None
    answer = sip.reply(request, 486, "Busy Here", to_tag="xyz", server="sandbox").decode()
    assert answer.startswith("SIP/2.0 486 Busy Here\r\n")
    assert "To: <sip:+918040264208@sbc.example.com>;tag=xyz\r\n" in answer
    assert "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP" in answer
    assert "CSeq: 7 INVITE\r\n" in answer
    trying = sip.reply(request, 100, "Trying", to_tag="xyz", server="sandbox").decode()
    assert ";tag=xyz" not in trying  # RFC 3261 8.2.6.1: no tag on a 100
    with pytest.raises(sip.NotSipError):
        sip.parse_request_head(b"HTTP/1.1 200 OK\r\nA: b")


def test_loss_and_jitter_survive_a_sequence_wrap_and_a_new_stream() -> None:
    figures = rtp.Figures("PCMA")
    for number in range(70_000):  # wraps 65535 -> 0; every tenth packet lost
        if number % 10 == 9:
            continue
        sequence = (60_000 + number) & 0xFFFF
        parsed = rtp.Parsed(8, sequence, number * 160, 1, b"")
        figures.arrived(parsed, number * 0.02, own=False)
    assert figures.lost == 6_999  # 7,000 lost, but the last one is after the last received
    assert figures.jitter_ms < 0.01
    for number in range(100):  # the far end starts a new stream: counted on its own
        figures.arrived(rtp.Parsed(8, 5 + number, number * 160, 2, b""), number * 0.02, own=False)
    assert figures.lost == 6_999
    assert rtp.parse(bytes([0x80, 0xCB]) + bytes(10)) is None  # RTCP BYE (203) is not media
