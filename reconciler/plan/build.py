"""Desired state x live state x ledger -> one account's plan: the thing reviewers approve.

Called by the pipeline (``plan``, ``drift``, and ``apply``, which re-plans before it acts
and again to verify). Pure: takes the account's declared trunks and routes, its live
state and its ledger, returns an :class:`AccountPlan`; never calls the API.

The stages of planning, each a module of this package (docs/architecture.md):
``live.pairing`` says what each declared trunk is; ``trunks`` turns each into steps
(with ``diff`` and ``operations``); here, ledger trunks no longer declared are deleted
(``prune``) or kept, and live trunks nobody owns are reported; ``routes`` adds route
records; ``livekit`` the partner end on LiveKit; ``order`` adds dependencies and sorts;
``rails`` adds what apply must refuse.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.live.pairing import pair
from reconciler.live.state import AccountState, Ledger, TrunkEntry
from reconciler.plan import rails
from reconciler.plan.actions import AccountPlan, Kind, NoticeKind, Operation, Resource
from reconciler.plan.livekit import Projects, plan_livekit, rotations, seam_notices
from reconciler.plan.order import dependencies, order
from reconciler.plan.routes import route_actions
from reconciler.plan.steps import AccountInput, Step, Steps, address
from reconciler.plan.trunks import TrunkPlanner

__all__ = ["AccountInput", "address", "plan_account"]


def _undeclared(steps: Steps, entries: Mapping[str, TrunkEntry], state: AccountState) -> None:
    """Ledger trunks no declared trunk pairs with: deleted with ``prune``, else kept."""
    account = steps.account
    for name, entry in entries.items():
        where = address(account.name, name, Resource.TRUNK)
        if entry.protect:
            message = (
                f"trunk {name} ({entry.sid}) is protected and no longer declared: kept (to "
                "retire it, declare it again with protect: false and apply, then remove it)"
            )
            steps.notice(NoticeKind.NOT_DECLARED, message, where)
        elif not account.prune:
            message = (
                f"trunk {name} ({entry.sid}) is no longer declared; prune is off, so it is "
                "left alone"
            )
            steps.notice(NoticeKind.NOT_DECLARED, message, where)
        else:
            gone = entry.sid in state.missing
            live = state.trunks.get(entry.sid)
            takes = rails.contents(live) if live is not None else []
            why = (
                "already gone from Exotel: forget it"
                if gone
                else "no longer declared (prune: true): delete it and everything on it"
            )
            steps.add(
                Step(
                    trunk=name,
                    operation=Operation.DELETE_TRUNK,
                    kind=Kind.DELETE,
                    before={"sid": entry.sid, "name": name, **({"takes": takes} if takes else {})},
                    reason=why,
                    target={"trunk_sid": entry.sid},
                )
            )


def _unmanaged(steps: Steps, trunks: Mapping[str, str]) -> None:
    for name, sid in trunks.items():
        steps.notice(
            NoticeKind.UNMANAGED,
            f"live trunk {name} ({sid}) is neither declared nor in the ledger: left alone "
            "(reconciler import can bring it under management)",
            address(steps.account.name, name, Resource.TRUNK),
        )


def _state_notices(steps: Steps, ledger: Ledger, state: AccountState) -> None:
    """What this refresh could not look at, and what the profile cannot see."""
    for sid, why in sorted(state.unreadable.items()):
        name = ledger.by_sid().get(sid, sid)
        steps.notice(
            NoticeKind.UNREADABLE,
            f"trunk {name} ({sid}) could not be read, so it was not checked: {why}",
            address(steps.account.name, name, Resource.TRUNK),
        )
    if state.not_refreshed:
        steps.notice(
            NoticeKind.NOT_REFRESHED,
            f"{len(state.not_refreshed)} trunk(s) not refreshed (--refresh changed): their "
            "manifests match the last apply, so drift on them was not looked for",
        )
    if steps.account.profile == "minimal":
        steps.notice(
            NoticeKind.PROFILE,
            "profile minimal: trunk names and settings cannot be read, so the alias is "
            "compared with the last applied one and unmanaged trunks are not listed",
        )


def plan_account(
    account: AccountInput,
    ledger: Ledger,
    state: AccountState,
    *,
    max_delete: int | None = None,
    projects: Projects | None = None,
) -> AccountPlan:
    """One account's plan: ordered actions and the notices a reviewer must see.
    ``projects``: what LiveKit lists for each partner the account uses (None: LiveKit's
    end is not looked at)."""
    steps = Steps(account)
    planner = TrunkPlanner(steps, ledger, state)
    pairing = pair(account.desired, ledger, state.listed)
    for found in pairing:
        planner.declared(found)
    _undeclared(steps, pairing.undeclared, state)
    _unmanaged(steps, pairing.unmanaged)
    steps.actions += route_actions(
        account.name, account.routes, ledger.routes, ledger.route_documents
    )
    steps.notices += rails.empty_checkout(
        account.name, declared=len(account.desired), tracked=len(ledger.trunks)
    )
    _state_notices(steps, ledger, state)
    livekit = [end for end in account.ends if end.platform == "livekit"]
    if projects is not None and (livekit or ledger.partner_objects):
        deleting = frozenset(
            a.trunk for a in steps.actions if a.operation is Operation.DELETE_TRUNK
        )
        plan_livekit(steps, livekit, ledger, projects, deleting=deleting)
    seam_notices(steps, account.ends)
    managed = rails.managed(state)
    linked, rotated = rotations(dependencies(steps.actions), account.ends)
    for trunk, said in rotated:
        where = address(account.name, trunk, Resource.TRUNK)
        steps.notice(NoticeKind.ROTATION, f"one change across both ends of {trunk}: {said}", where)
    actions = order(linked)
    steps.notices += rails.too_many_deletions(
        account.name, actions, state, managed_objects=managed, max_delete=max_delete
    )
    return AccountPlan(
        account=account.name,
        sid=account.sid,
        profile=account.profile,
        actions=actions,
        notices=tuple(steps.notices),
        managed=managed,
        refreshed=len(state.trunks),
        not_refreshed=len(state.not_refreshed),
        calls=state.calls,
        scope=tuple(sorted(state.scope)) if state.scope is not None else None,
    )
