"""DIDs the plan maps that another trunk holds: a notice before apply fails on them.

Called by the pipeline after ``plan.build``, with the holders it looked up (profile
full, ``trunk-maps``) for the DIDs the plan would map. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reconciler.live.state import Ledger
from reconciler.plan.actions import AccountPlan, Kind, Notice, NoticeKind, Operation


def _automatic(plan: AccountPlan, operation: Operation) -> list[str]:
    return [a.key for a in plan.actions if a.operation is operation and a.kind is not Kind.MANUAL]


def new_numbers(plan: AccountPlan) -> list[str]:
    """DIDs the plan would map: the only ones worth a trunk-maps lookup."""
    return sorted(set(_automatic(plan, Operation.MAP_NUMBER)))


def did_notices(plan: AccountPlan, holders: Mapping[str, str], ledger: Ledger) -> AccountPlan:
    """Warn about DIDs the plan maps that sit on a trunk the plan does not free them from."""
    names = ledger.by_sid()
    unmapped = set(_automatic(plan, Operation.UNMAP_NUMBER))
    emptied = {  # trunks this plan deletes or rebuilds: their DIDs are freed first
        a.target["trunk_sid"]
        for a in plan.actions
        if a.operation in (Operation.DELETE_TRUNK, Operation.REPLACE_TRUNK)
        and a.kind is not Kind.MANUAL
        and "trunk_sid" in a.target
    }
    notices = list(plan.notices)
    for action in plan.actions:
        if action.operation is not Operation.MAP_NUMBER or action.kind is Kind.MANUAL:
            continue
        if action.key in unmapped:
            continue
        holder = holders.get(action.key)
        if holder is None or holder == action.target.get("trunk_sid") or holder in emptied:
            continue
        owner = f"trunk {names[holder]}" if holder in names else f"unmanaged trunk {holder}"
        message = (
            f"DID {action.key} is mapped on {owner}: mapping it here fails until it is "
            "unmapped there"
        )
        notices.append(Notice(NoticeKind.DID_ELSEWHERE, plan.account, message, action.address))
    return replace(plan, notices=tuple(notices))
