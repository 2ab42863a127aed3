"""The SIP message layer: building requests and reading responses off a stream (RFC 3261
7, 8.1.1, 18.3), and reading an SDP answer. Real servers are in test_check.py; these
cover what none of them sends (folded lines, compact forms, requests in between)."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.sip import message as sip
from reconciler.sip import sdp
from reconciler.sip import stream as wire

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb\r\n"
    b"VIA: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bKc\r\n"
    b"f: <sip:check@10.0.0.1>;tag=1\r\n"
    b"t: <sip:sbc.example.com>;tag=abc\r\n"
    b"i: call-1@reconciler\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Server: Example SBC\r\n"
    b"  version 7\r\n"
    b"c: application/sdp\r\n"
    b"l:   29\r\n"
    b"\r\n"
    b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


def read(*chunks: bytes) -> list[sip.Response]:
    async def main() -> list[sip.Response]:
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        found = []
        while not reader.at_eof():
            try:
                found.append(await wire.read_response(reader))
            except ConnectionResetError:
                break
        return found

    return asyncio.run(main())


def test_a_response_with_compact_folded_and_repeated_headers() -> None:
    [response] = read(RESPONSE)
    assert (response.code, response.reason) == (200, "OK")
    assert response.headers["via"] == (
        "SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb",
        "SIP/2.0/TCP 10.0.0.3;branch=z9hG4bKc",
    )
    assert response.software == "Example SBC version 7"
    assert response.to_tag == "abc"
    assert response.header("Call-ID") == "call-1@reconciler"
    assert response.cseq_method == "INVITE"
    assert response.body == "v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert sdp.chosen_codec(response.body) == "PCMU"  # payload 0, by its static number


def test_framing_skips_keepalives_and_requests_and_splits_back_to_back_answers() -> None:
    request = b"OPTIONS sip:check@10.0.0.1 SIP/2.0\r\nContent-Length: 4\r\n\r\nbody"
    trying = b"SIP/2.0 100 Trying\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    found = read(b"\r\n\r\n", request, trying + RESPONSE[:50], RESPONSE[50:])
    assert [response.code for response in found] == [100, 200]


def test_bytes_that_are_not_sip() -> None:
    with pytest.raises(sip.NotSipError, match=re.escape("'HTTP/1.1 400 Bad Request'")):
        read(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(sip.NotSipError, match="no colon"):
        read(b"SIP/2.0 200 OK\r\nnonsense\r\n\r\n")
    with pytest.raises(sip.NotSipError, match="is not a number"):
        read(b"SIP/2.0 200 OK\r\nContent-Length: many\r\n\r\n")


def test_a_request_carries_what_rfc_3261_requires() -> None:
    request = sip.Request(
        "OPTIONS",
        "sip:sbc.example.com:5061;transport=tls",
        via=f"SIP/2.0/TLS 10.0.0.1:40000;branch={sip.branch()};rport",
        from_="<sip:check@10.0.0.1>;tag=1",
        to="<sip:sbc.example.com:5061;transport=tls>",
        call_id="c@reconciler",
        cseq=1,
    )
    text = request.encode("exotel-reconciler/1").decode()
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "OPTIONS sip:sbc.example.com:5061;transport=tls SIP/2.0"
    names = [line.partition(":")[0] for line in lines[1:]]
    for required in ("Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Content-Length"):
        assert required in names
    assert ";branch=z9hG4bK" in lines[1]
    assert "CSeq: 1 OPTIONS" in lines
    assert "Content-Length: 0" in lines
    assert body == ""


def test_the_offer_and_reading_the_answer() -> None:
    offer = sdp.offer("10.0.0.1", 40000, secure=False, session=1)
    assert "m=audio 40000 RTP/AVP 8 0 101" in offer
    assert "a=crypto" not in offer
    secure = sdp.offer("10.0.0.1", 40000, secure=True, session=1)
    assert "m=audio 40000 RTP/SAVP 8 0 101" in secure
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in secure
    answer = "v=0\r\nm=audio 5000 RTP/AVP 101 8\r\na=rtpmap:101 telephone-event/8000\r\n"
    assert sdp.chosen_codec(answer) == "PCMA"
    assert sdp.chosen_codec("v=0\r\nm=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n") == (
        "G729"
    )
    assert sdp.chosen_codec("v=0\r\n") is None


@given(
    code=st.integers(100, 699),
    reason=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    body=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
    compact=st.booleans(),
)
def test_any_well_formed_response_reads_back(
    code: int, reason: str, body: str, compact: bool
) -> None:
    length = "l" if compact else "Content-Length"
    raw = f"SIP/2.0 {code} {reason}\r\n{length}: {len(body)}\r\n\r\n{body}".encode()
    [response] = read(raw, raw)[:1]
    assert (response.code, response.reason, response.body) == (code, reason.strip(), body)
