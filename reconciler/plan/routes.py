"""Route changes since the last apply: served by ``reconciler serve``, recorded by apply.

Called by ``plan.build`` for each account. Pure. Routes never reach Exotel's API: apply
records each route's fingerprint in the ledger, so the next plan shows only what changed
since, and the reviewer sees when a merge changes where calls go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.live.state import sha256_of
from reconciler.manifests.routes import RouteSpec
from reconciler.plan.actions import Action, Kind, Operation, Origin, Resource
from reconciler.plan.steps import address

ROUTES_TRUNK = "(routes)"  # the pseudo-trunk route actions are grouped under
WHY = (
    "takes effect when these manifests are deployed to reconciler serve; apply only "
    "records it (no Exotel API call)"
)


def _after(route: RouteSpec, recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    after = route_summary(route)
    document = route.model_dump(mode="json")
    if recorded is not None:
        after["changes"] = route_changes(dict(recorded), document)
    after["route"] = document  # what apply records, for the next plan to compare with
    return after


def route_fingerprint(route: RouteSpec) -> str:
    return sha256_of(route.model_dump(mode="json"))


def route_summary(route: RouteSpec) -> dict[str, Any]:
    return {
        "default_trunk": route.default.trunk,
        "rules": len(route.rules),
        "handoff": route.handoff is not None,
    }


def route_changes(before: Any, after: Any, path: str = "") -> list[str]:
    """What differs between two route documents, field by field: ``rules[0].when.hours
    09:00-18:00 -> 10:00-19:00``, ``+ handoff``, ``- rules[1]``."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in [*before, *(k for k in after if k not in before)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                found.append(f"- {where}")
            elif key not in before:
                found.append(f"+ {where}")
            else:
                found += route_changes(before[key], after[key], where)
        return found
    if isinstance(before, list) and isinstance(after, list):
        found = []
        for index in range(max(len(before), len(after))):
            where = f"{path}[{index}]"
            if index >= len(after):
                found.append(f"- {where}")
            elif index >= len(before):
                found.append(f"+ {where}")
            else:
                found += route_changes(before[index], after[index], where)
        return found
    return [] if before == after else [f"{path} {before} -> {after}"]


def route_actions(
    account: str,
    routes: Sequence[RouteSpec],
    recorded: Mapping[str, str],
    documents: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Action]:
    """Route records to make; a change against a recorded route document lists what
    changed, field by field (``after["changes"]``)."""
    declared = {route.did: route for route in routes}
    actions = []
    for did in sorted(declared.keys() | recorded.keys()):
        route = declared.get(did)
        now = route_fingerprint(route) if route else None
        if now == recorded.get(did):
            continue
        if did not in recorded:
            kind = Kind.CREATE
        elif route is None:
            kind = Kind.DELETE
        else:
            kind = Kind.UPDATE
        actions.append(
            Action(
                address=address(account, ROUTES_TRUNK, Resource.ROUTE, did),
                kind=kind,
                resource=Resource.ROUTE,
                operation=Operation.RECORD_ROUTE,
                account=account,
                trunk=ROUTES_TRUNK,
                key=did,
                before={"fingerprint": recorded[did]} if did in recorded else None,
                after=_after(route, (documents or {}).get(did)) if route else None,
                reason=WHY,
                origin=Origin.MANIFEST,
                target={"fingerprint": now} if now else {},
            )
        )
    return actions
