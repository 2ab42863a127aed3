"""Canonical forms: what users write and what Exotel answers must come out the same."""

from __future__ import annotations

import pytest

from reconciler.manifests import canonical


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("+918040264208", "+918040264208"),
        ("+91 80402 64208", "+918040264208"),
        ("+91-80-4026-4208", "+918040264208"),
        ("+91 (80) 4026.4208", "+918040264208"),
    ],
)
def test_e164(written: str, expected: str) -> None:
    assert canonical.e164(written) == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("44.248.146.11", "44.248.146.11/32"),
        ("44.248.146.11/32", "44.248.146.11/32"),
        (" 13.126.40.0/24 ", "13.126.40.0/24"),
        ("13.126.0.0/16", "13.126.0.0/16"),
    ],
)
def test_whitelisted_ip(written: str, expected: str) -> None:
    assert canonical.whitelisted_ip(written) == expected


def test_ip_with_mask_is_how_api_answers_read() -> None:
    address = canonical.ipv4_address("13.126.40.0")
    assert canonical.ip_with_mask(address, 24) == canonical.whitelisted_ip("13.126.40.0/24")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("sip.company.com:5061;transport=tls", "sip.company.com:5061;transport=tls"),
        # What the API answers: a sip: prefix, the host's case as sent.
        ("sip:SIP.Company.com:5061;transport=TLS", "sip.company.com:5061;transport=tls"),
        ("SIP:44.248.146.11:05061;Transport=tcp", "44.248.146.11:5061;transport=tcp"),
    ],
)
def test_destination(written: str, expected: str) -> None:
    assert canonical.destination(written) == expected


def test_destination_ip() -> None:
    assert str(canonical.destination_ip("44.248.146.11:5061;transport=tls")) == "44.248.146.11"
    assert canonical.destination_ip("sip.company.com:5061;transport=tls") is None


def test_mode_null_is_pstn() -> None:
    assert canonical.mode(None) == "pstn"
    assert canonical.mode("flow") == "flow"
    with pytest.raises(ValueError, match="not one of pstn or flow"):
        canonical.mode("sip")


def test_domain_names() -> None:
    assert canonical.domain_name("AMEYO5M.pstn.exotel.com") == "ameyo5m.pstn.exotel.com"
    assert canonical.default_domain_name("Ameyo5m") == "ameyo5m.pstn.exotel.com"


def test_a_destination_missing_port_and_transport_is_told_both_at_once() -> None:
    with pytest.raises(ValueError, match="add the port and the transport, like"):
        canonical.destination("sbc.example.com")
