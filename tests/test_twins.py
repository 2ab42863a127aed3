"""The manifests' rules (``manifests/canonical.py``) and the sandbox's copy of Exotel's
(``sandbox/rules.py``) are twins by design: the sandbox imports nothing from the rest
of the reconciler, so it keeps its own. What must hold between them: whatever a manifest
accepts, Exotel (the sandbox) accepts in its canonical form, so validation never passes
what apply would then see refused; and what Exotel refuses, the manifests refuse too.

Shared vectors plus generated inputs (hypothesis) check both directions, so neither copy
can drift from the other unseen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifests import canonical
from reconciler.sandbox import rules
from reconciler.sandbox.envelope import ApiError as SandboxError


def _accepts(check: Callable[[], Any]) -> bool:
    try:
        check()
    except (ValueError, SandboxError):
        return False
    return True


def _sandbox_destination(canonical_form: str) -> None:
    _, _, _, address = rules.parse_destination(canonical_form)
    if address is not None:
        rules.check_public_ipv4(str(address))


def _manifest_destination(text: str) -> str:
    """A destination as the manifests take it: its own rule, and for an IP the trunk's
    rule that it lies in a whitelisted network (which must be public)."""
    written = canonical.destination(text)
    address = canonical.destination_ip(written)
    if address is not None:
        canonical.whitelisted_ip(str(address))
    return written


def _sandbox_ip(canonical_form: str) -> None:
    address, _, mask = canonical_form.partition("/")
    rules.check_public_ipv4(address)
    rules.check_mask(int(mask))


# name -> (the manifests' rule, the sandbox's rule on its canonical output)
TWINS: dict[str, tuple[Callable[[str], str], Callable[[str], Any]]] = {
    "e164": (canonical.e164, rules.check_e164),
    "destination": (_manifest_destination, _sandbox_destination),
    "whitelisted_ip": (canonical.whitelisted_ip, _sandbox_ip),
    "trunk_name": (canonical.trunk_name, rules.check_trunk_name),
    "domain_name": (canonical.domain_name, rules.check_domain_name),
    "username": (
        lambda text: canonical.word(text, what="username", max_length=32),
        lambda text: rules.check_word(text, "user_name", max_length=32),
    ),
}

# Inputs Exotel refuses (docs/exotel-api.md): the manifests must refuse them too.
REFUSED = {
    "e164": ["8040264208", "+0918040264208", "+91 80 4026 420A", "+9180402642081234567", ""],
    "destination": [
        "10.0.0.1:5061;transport=tls",
        "127.0.0.1:5060;transport=tcp",
        "sbc.example.com:5060;transport=udp",
        "sbc.example.com:70000;transport=tls",
        "sbc_example:5061;transport=tls",
        "999.1.1.1:5061;transport=tls",
    ],
    "whitelisted_ip": ["10.0.0.1", "192.168.1.0/24", "8.8.8.8/8", "224.0.0.1", "0.0.0.0"],
    "trunk_name": ["a-b", "seventeen_chars__", "", "bot bot"],
    "domain_name": ["example.com", ".pstn.exotel.com", "a b.pstn.exotel.com"],
    "username": ["a-b", "x" * 33, "", "bot user"],
}
# Inputs the manifests accept, each with the form the sandbox is sent.
ACCEPTED = {
    "e164": ["+918040264208", "+91 80 4026 4208", "+14155550100"],
    "destination": [
        "44.248.146.11:5061;transport=tls",
        "sip:sbc.example.com:5060;transport=tcp",
        "SBC.Example.com:5061;transport=TLS",
    ],
    "whitelisted_ip": ["44.248.146.11", "13.126.40.0/24", "52.66.0.0/16"],
    "trunk_name": ["bot", "blr_bot_2", "x" * 16],
    "domain_name": ["ameyo5m.pstn.exotel.com", "Acme1.PSTN.exotel.com"],
    "username": ["bot_user", "x" * 32],
}


@pytest.mark.parametrize(
    ("rule", "text"), [(rule, text) for rule, texts in REFUSED.items() for text in texts]
)
def test_what_exotel_refuses_the_manifests_refuse(rule: str, text: str) -> None:
    manifest_rule, _ = TWINS[rule]
    assert not _accepts(lambda: manifest_rule(text))


@pytest.mark.parametrize(
    ("rule", "text"), [(rule, text) for rule, texts in ACCEPTED.items() for text in texts]
)
def test_what_the_manifests_accept_exotel_accepts(rule: str, text: str) -> None:
    manifest_rule, sandbox_rule = TWINS[rule]
    written = manifest_rule(text)
    assert _accepts(lambda: sandbox_rule(written)), (text, written)


TEXT = st.text(alphabet="0123456789abcdefxyzABC.:;=+-_/ sip", max_size=40)


@settings(max_examples=400, deadline=None)
@given(rule=st.sampled_from(sorted(TWINS)), text=TEXT)
def test_generated_inputs_never_pass_the_manifests_and_fail_at_exotel(rule: str, text: str) -> None:
    manifest_rule, sandbox_rule = TWINS[rule]
    try:
        written = manifest_rule(text)
    except ValueError:
        return
    assert _accepts(lambda: sandbox_rule(written)), (rule, text, written)


@pytest.mark.parametrize(
    ("rule", "text"), [(rule, text) for rule, texts in REFUSED.items() for text in texts]
)
def test_the_refused_vectors_are_what_the_sandbox_refuses(rule: str, text: str) -> None:
    """So the vectors stay true to Exotel's rules as the sandbox has them."""
    _, sandbox_rule = TWINS[rule]
    assert not _accepts(lambda: sandbox_rule(text))
