"""Is the plan apply would carry out now the one that was reviewed? Pure.

Called by the apply pipeline with the saved JSON plans (``plan --out``) it was given and
the plan it has just made. Accepted when:

* the checksums match (the same actions, in the same order, for the accounts applied:
  a plan of several accounts may be applied one account at a time); or
* every action of the fresh plan does what one of the reviewed plans said, to the same
  address (kind, operation, before and after): what remains after a partial apply, or
  the union of several merged pull requests' plans applied by one run. Dependencies and
  API ids may differ (what landed changes them); what is done may not.

Anything else is refused, naming each action added, no longer needed or changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.plan.actions import SYMBOL, Action, Kind, Plan, checksum, saved_canonical

KINDS = {str(kind) for kind in Kind}

WHAT_IT_DOES = ("address", "kind", "operation", "before", "after")


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    message: str  # why it was refused, or how it was accepted


def _does(action: Mapping[str, Any]) -> str:
    return json.dumps({key: action.get(key) for key in WHAT_IT_DOES}, sort_keys=True)


def _fresh_does(action: Action) -> str:
    return _does(action.canonical())


def scopes(saved: Sequence[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Per account, the trunks the reviewed plans looked at, when every one of them was
    scoped (``plan --refresh changed``); an account any of them read whole is read whole."""
    found: dict[str, set[str]] = {}
    whole: set[str] = set()
    for document in saved:
        for account in document.get("accounts", []):
            if not isinstance(account, dict):
                continue
            name, scope = str(account.get("account")), account.get("scope")
            if isinstance(scope, list):
                found.setdefault(name, set()).update(str(trunk) for trunk in scope)
            else:
                whole.add(name)
    return {name: frozenset(names) for name, names in found.items() if name not in whole}


def compare(saved: Sequence[Mapping[str, Any]], plan: Plan) -> Verdict:
    accounts = {account.account for account in plan.accounts}
    chosen: list[dict[str, Any]] = []
    for document in saved:
        actions = [a for a in document.get("actions", []) if isinstance(a, dict)]
        mine = [a for a in actions if a.get("account") in accounts]
        if len(saved) == 1:
            everything = len(mine) == len(actions)
            reviewed_checksum = (
                document.get("checksum")
                if everything
                else checksum([saved_canonical(a) for a in mine])
            )
            if reviewed_checksum == plan.checksum:
                return Verdict(True, "the reviewed plan, unchanged")
        chosen += mine
    reviewed = {_does(a) for a in chosen}
    fresh = [_fresh_does(action) for action in plan.actions]
    if all(does in reviewed for does in fresh):
        return Verdict(
            True,
            f"{len(fresh)} action(s) left of the {len(chosen)} reviewed in "
            f"{len(saved)} plan(s); the others have landed already",
        )
    covered = {
        str(account.get("account"))
        for document in saved
        for account in document.get("accounts", [])
        if isinstance(account, dict)
    }
    return Verdict(False, _refusal(chosen, plan, covered or accounts))


def _refusal(chosen: Sequence[Mapping[str, Any]], plan: Plan, covered: set[str]) -> str:
    reviewed = {str(a.get("address")): a for a in chosen}
    now = {action.address: action for action in plan.actions}
    outside = sorted({a.account for a in plan.actions} - covered)
    lines = [
        f"  {now[address].symbol} {address} (new since the plan was made)"
        for address in now.keys() - reviewed.keys()
        if now[address].account in covered
    ]
    for address in reviewed.keys() - now.keys():
        was = reviewed[address]
        symbol = SYMBOL.get(Kind(was["kind"]), "?") if was.get("kind") in KINDS else "?"
        lines.append(f"  {symbol} {address} (reviewed, no longer needed)")
    for address in now.keys() & reviewed.keys():
        if _does(reviewed[address]) != _fresh_does(now[address]):
            lines.append(
                f"  {now[address].symbol} {address} (changed: now {now[address].kind} "
                f"{now[address].operation})"
            )
    detail = "\n".join(sorted(lines, key=lambda line: line[4:]))
    if outside:
        detail += (
            f"\n  accounts {', '.join(outside)}: not in the reviewed plan (it covers "
            f"{', '.join(sorted(covered)) or 'none'}); apply --account to leave them out"
        )
    return (
        f"the saved plan is stale: re-planning now gives checksum {plan.checksum}, which is "
        f"not what was reviewed, and does more than the reviewed plan said. What differs:\n"
        f"{detail.strip(chr(10))}\nNothing was applied: review a new plan."
    )
