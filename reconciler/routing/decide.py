"""Routing decisions: Exotel's query parameters + the manifests + the ledger -> an answer.

Called by ``routing.service`` for every ``/connect`` (the Connect applet's Dynamic URL) and
``/handoff`` (the Passthru webhook) request. Pure: the clock and the agents' answer are
passed in, so tests fix them.

Times and weekdays are Asia/Kolkata (UTC+05:30, no daylight saving). Exotel sends
numbers in national form (``08040264208``); they are read as E.164 before matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.manifests import canonical
from reconciler.manifests.routes import (
    CATCH_ALL,
    Conditions,
    Handoff,
    RouteSpec,
    Target,
    encode_params,
)
from reconciler.manifests.windows import in_window

INDIA = "91"


@dataclass(frozen=True)
class Snapshot:
    """Everything a decision needs, loaded together and swapped whole on reload."""

    routes: Mapping[str, RouteSpec] = field(default_factory=dict)  # DID -> route
    catch_all: Mapping[str, RouteSpec] = field(default_factory=dict)  # account -> "*" route
    accounts: Mapping[str, str] = field(default_factory=dict)  # declared DID -> its account
    sids: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (account, trunk) -> SID
    loaded_at: str = ""

    @classmethod
    def build(
        cls,
        routes: Sequence[RouteSpec],
        sids: Mapping[tuple[str, str], str],
        loaded_at: str,
        accounts: Mapping[str, str] | None = None,
    ) -> Snapshot:
        by_did: dict[str, RouteSpec] = {}
        catch_all: dict[str, RouteSpec] = {}
        for route in routes:
            if route.did == CATCH_ALL:
                catch_all.setdefault(route.account, route)
            else:
                by_did.setdefault(route.did, route)
        return cls(by_did, catch_all, dict(accounts or {}), dict(sids), loaded_at)

    def __len__(self) -> int:
        return len(self.routes) + len(self.catch_all)


@dataclass(frozen=True)
class Decision:
    status: int
    body: dict[str, Any]
    did: str | None
    rule: str  # rules[0] | default | no-route | unknown-trunk | ... (for the log line)
    agents_url: str | None = None  # handoff: ask this before answering


def number(text: str | None) -> str | None:
    """A number as Exotel sends it (``08040264208``, ``918040264208``, ``+91...``) in E.164."""
    if not text:
        return None
    digits = "".join(character for character in text if character.isdigit())
    if text.strip().startswith("+"):
        candidate = "+" + digits
    elif digits.startswith("00"):  # international prefix: 0091...
        candidate = "+" + digits[2:]
    elif len(digits) == 13 and digits.startswith("0" + INDIA):  # 091...
        candidate = "+" + digits[1:]
    elif len(digits) == 11 and digits.startswith("0"):
        candidate = f"+{INDIA}{digits[1:]}"
    elif len(digits) == 12 and digits.startswith(INDIA):
        candidate = "+" + digits
    elif len(digits) == 10:
        candidate = f"+{INDIA}{digits}"
    else:
        candidate = "+" + digits
    try:
        return canonical.e164(candidate)
    except ValueError:
        return None


def _holds(conditions: Conditions, caller: str | None, now: datetime) -> bool:
    if conditions.caller_prefixes and not (
        caller and any(caller.startswith(prefix) for prefix in conditions.caller_prefixes)
    ):
        return False
    return in_window(conditions.hours, conditions.weekdays, now)


def _route(snapshot: Snapshot, query: Mapping[str, str]) -> tuple[str | None, RouteSpec | None]:
    """The DID's own route, else the ``"*"`` route of the account the DID is declared in.
    A DID no trunk declares falls to a ``"*"`` route only when a single account has one:
    a call never reaches another account's trunk."""
    did = number(query.get("CallTo"))
    if did is None:
        return None, None
    route = snapshot.routes.get(did)
    if route is not None:
        return did, route
    account = snapshot.accounts.get(did)
    if account is not None:
        return did, snapshot.catch_all.get(account)
    if len(snapshot.catch_all) == 1:
        return did, next(iter(snapshot.catch_all.values()))
    return did, None


def _answer(target: Target, sid: str) -> dict[str, Any]:
    """The Dynamic URL answer, in the shape of Exotel's integration guide."""
    body: dict[str, Any] = {
        "fetch_after_attempt": target.fetch_after_attempt,
        "destination": {"trunk": sid},
    }
    if target.custom_params:
        body["custom_params"] = encode_params(target.custom_params)
    body["record"] = target.record
    body["recording_channels"] = target.recording_channels
    return body


def connect(snapshot: Snapshot, query: Mapping[str, str], now: datetime) -> Decision:
    did, route = _route(snapshot, query)
    if route is None:
        return Decision(404, {"error": "no route for this number"}, did, "no-route")
    caller = number(query.get("CallFrom"))
    chosen, rule = route.default, "default"
    for index, candidate in enumerate(route.rules):
        if _holds(candidate.when, caller, now):
            chosen, rule = candidate, f"rules[{index}]"
            break
    sid = snapshot.sids.get((route.account, chosen.trunk))
    if sid is None:
        body = {"error": f"trunk {chosen.trunk} is not in the ledger yet: apply first"}
        return Decision(503, body, did, f"{rule}:unknown-trunk")
    return Decision(200, _answer(chosen, sid), did, rule)


def handoff(snapshot: Snapshot, query: Mapping[str, str], now: datetime) -> Decision:
    """Before the agents are asked: outside hours or without a handoff rule, hang up."""
    did, route = _route(snapshot, query)
    if route is None or route.handoff is None:
        return Decision(404, {"result": "hangup", "reason": "no handoff rule"}, did, "no-handoff")
    rule: Handoff = route.handoff
    if not in_window(rule.hours, rule.weekdays, now):
        body = {"result": "hangup", "reason": "outside business hours"}
        return Decision(rule.otherwise, body, did, "closed")
    if rule.agents.url is not None:
        return Decision(0, {}, did, "ask-agents", agents_url=rule.agents.url)
    return agents_answer(route, available=bool(rule.agents.available), did=did)


def agents_answer(route: RouteSpec, *, available: bool, did: str | None) -> Decision:
    assert route.handoff is not None
    if available:
        return Decision(200, {"result": "agent"}, did, "agents")
    body = {"result": "hangup", "reason": "no agent available"}
    return Decision(route.handoff.otherwise, body, did, "no-agents")


def handoff_route(snapshot: Snapshot, query: Mapping[str, str]) -> RouteSpec | None:
    return _route(snapshot, query)[1]


def unmet(conditions: Conditions, caller: str | None, now: datetime) -> list[str]:
    """Why a rule's conditions do not hold for this caller at this time (empty when they
    do), in words, for ``reconciler trace``."""
    reasons = []
    if conditions.caller_prefixes and not (
        caller and any(caller.startswith(prefix) for prefix in conditions.caller_prefixes)
    ):
        prefixes = ", ".join(conditions.caller_prefixes)
        who = caller or "an unknown caller"
        reasons.append(f"{who} does not start with {prefixes}")
    if not in_window(conditions.hours, conditions.weekdays, now):
        days = ",".join(conditions.weekdays) or "any day"
        reasons.append(f"outside {conditions.hours or 'all day'} on {days}")
    return reasons
