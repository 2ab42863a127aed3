"""Saved plans that prove where they came from: their checksum, and a signature. Pure.

Called by the CLI: ``plan --out FILE`` signs the JSON plan when ``RECONCILER_PLAN_KEY``
is set, and ``apply --plan FILE`` checks every saved plan here before anything else
(before a ledger is read or Exotel is called).

Two checks, for two different failures:

* **The checksum.** A plan's ``checksum`` is over its actions. A saved plan whose actions
  no longer hash to its own checksum was edited after it was made; it is refused, key or
  no key, so an edited ``plan.json`` is never "the reviewed plan, unchanged".
* **The signature.** HMAC-SHA256 (RFC 2104) over the whole document but the signature
  itself, in canonical JSON (sorted keys, no spaces, UTF-8), with a key that only the
  trusted workflows hold (docs/gitops.md). A checksum proves a plan is self-consistent;
  only a key proves the plan was made by a run that had the key: a workflow edited on
  another branch, or a person, can write a self-consistent plan but cannot sign one.
  HMAC rather than a public-key signature because the signer and the verifier are the
  same party (the repository's own workflows): one secret, nothing to publish, and the
  standard library's constant-time comparison.

The signature names its key by a short id (an HMAC of a fixed label under the key), so a
refusal can say "signed with another key" rather than "altered" when the key was rotated;
the id reveals nothing usable about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.plan.actions import checksum, saved_canonical

__all__ = ["Fault", "Verdict", "checksum", "key_id", "saved_canonical", "sign", "verify"]

ALGORITHM = "hmac-sha256"
MIN_KEY_LENGTH = 32  # characters: `openssl rand -hex 32` gives 64, 256 bits
_KEY_ID_LABEL = b"reconciler plan key id"


class Fault(StrEnum):
    """Why a saved plan is refused; the values are what a report says."""

    NOT_A_PLAN = "not a plan"
    ALTERED = "altered"  # its actions do not hash to its checksum, or the signature fails
    UNSIGNED = "unsigned"
    OTHER_KEY = "signed with another key"


@dataclass(frozen=True)
class Verdict:
    fault: Fault | None
    message: str

    @property
    def accepted(self) -> bool:
        return self.fault is None


def key_problem(key: str) -> str | None:
    """What is wrong with a plan key, or None."""
    if len(key) < MIN_KEY_LENGTH:
        return (
            f"is {len(key)} characters long: use at least {MIN_KEY_LENGTH} random characters "
            "(for example the output of `openssl rand -hex 32`)"
        )
    return None


def key_id(key: str) -> str:
    return hmac.new(key.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def _signed_bytes(document: Mapping[str, Any]) -> bytes:
    body = {name: value for name, value in document.items() if name != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: str, document: Mapping[str, Any]) -> str:
    return hmac.new(key.encode(), _signed_bytes(document), hashlib.sha256).hexdigest()


def sign(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The document with its signature (any earlier one replaced)."""
    body = {name: value for name, value in document.items() if name != "signature"}
    signature = {"algorithm": ALGORITHM, "key_id": key_id(key), "value": _mac(key, body)}
    return {**body, "signature": signature}


def _self_consistent(document: Mapping[str, Any], name: str) -> Verdict:
    actions = document.get("actions")
    claimed = document.get("checksum")
    if not isinstance(actions, list) or not isinstance(claimed, str):
        return Verdict(Fault.NOT_A_PLAN, f"{name} is not a plan from `reconciler plan --out`")
    if not all(isinstance(action, dict) for action in actions):
        return Verdict(Fault.NOT_A_PLAN, f"{name} has an action that is not an object")
    actual = checksum([saved_canonical(action) for action in actions])
    if not hmac.compare_digest(actual, claimed):
        return Verdict(
            Fault.ALTERED,
            f"{name} was altered after it was made: it claims checksum {claimed}, "
            f"but its actions hash to {actual}",
        )
    return Verdict(None, "self-consistent")


def verify(document: Mapping[str, Any], *, name: str, key: str | None) -> Verdict:
    """Accept a saved plan, or say why not. Without a key only the checksum is checked;
    with one, the plan must also carry a signature made with that key."""
    consistent = _self_consistent(document, name)
    if not consistent.accepted or key is None:
        return consistent
    signature = document.get("signature")
    if not isinstance(signature, dict) or not signature.get("value"):
        return Verdict(
            Fault.UNSIGNED,
            f"{name} is not signed, and RECONCILER_PLAN_KEY is set: only a plan made with "
            "that key (plan --out, by the plan workflow) is accepted",
        )
    if signature.get("algorithm") != ALGORITHM:
        return Verdict(
            Fault.UNSIGNED,
            f"{name} is signed with {signature.get('algorithm')!r}, not {ALGORITHM}",
        )
    if signature.get("key_id") != key_id(key):
        return Verdict(
            Fault.OTHER_KEY,
            f"{name} is signed with another key (key id {signature.get('key_id')}, not "
            f"{key_id(key)}): it was not made by this repository's plan workflow, or the key "
            "has been rotated since (plan again)",
        )
    if not hmac.compare_digest(str(signature.get("value")), _mac(key, document)):
        return Verdict(
            Fault.ALTERED,
            f"{name} was altered after it was signed: its signature does not match its content",
        )
    return Verdict(None, f"signed with key {key_id(key)}")
