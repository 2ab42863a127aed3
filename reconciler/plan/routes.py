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
from reconciler.plan.actions import Action, Kind, Operation, Origin
from reconciler.plan.diff import Resource
from reconciler.plan.steps import address

ROUTES_TRUNK = "(routes)"  # the pseudo-trunk route actions are grouped under
WHY = (
    "takes effect when these manifests are deployed to reconciler serve; apply only "
    "records it (no Exotel API call)"
)


def route_fingerprint(route: RouteSpec) -> str:
    return sha256_of(route.model_dump(mode="json"))


def route_summary(route: RouteSpec) -> dict[str, Any]:
    return {
        "default_trunk": route.default.trunk,
        "rules": len(route.rules),
        "handoff": route.handoff is not None,
    }


def route_actions(
    account: str, routes: Sequence[RouteSpec], recorded: Mapping[str, str]
) -> list[Action]:
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
                after=route_summary(route) if route else None,
                reason=WHY,
                origin=Origin.MANIFEST,
                target={"fingerprint": now} if now else {},
            )
        )
    return actions
