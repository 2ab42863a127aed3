"""What each operation is: its order, whether profile ``minimal`` has it, how to do it by hand.

Used by ``plan.build`` (to turn changes into operations, manual steps or replacements),
``plan.order`` (ranks) and ``apply`` (which has a handler for every operation that is
not manual-only; a test checks that the tables and the handlers are complete). The
children's operations come from their kinds (``plan.kinds``); this module adds the
trunk's own and the routes', and gathers them into one table each. Pure tables, from
docs/exotel-api.md (the endpoints profile ``minimal`` lacks) and docs/architecture.md
(the order).
"""

from __future__ import annotations

from reconciler.plan.actions import Action, Kind, Operation, Resource
from reconciler.plan.kinds import KINDS, Op

# Operations the minimal profile lacks (docs/exotel-api.md: the endpoints it answers 404).
NOT_IN_MINIMAL = frozenset({Operation.RENAME_TRUNK}).union(*(kind.not_in_minimal for kind in KINDS))
# What profile minimal does instead, where it can.
MINIMAL_SUBSTITUTES = {
    operation: instead for kind in KINDS for operation, instead in kind.substitutes.items()
}
# Operations apply never performs: a person does them.
MANUAL_ONLY = frozenset({Operation.CHANGE_DOMAIN, Operation.IMPORT_PENDING})

OPERATIONS: dict[tuple[Resource, Op], Operation] = {
    (kind.resource, change): operation
    for kind in KINDS
    for change, operation in kind.operations.items()
}
KIND = {Op.ADD: Kind.CREATE, Op.MODIFY: Kind.UPDATE, Op.REMOVE: Kind.DELETE}

# Order of execution, lower first (the bands are in plan.kinds, with the children's
# ranks): the trunk's own operations first; manual steps wait for everything apply can
# do on their trunk; trunk deletes last; routes, ledger only, after all.
TRUNK_RANK: dict[Operation, int] = {
    Operation.CREATE_TRUNK: 0,
    Operation.REPLACE_TRUNK: 0,
    Operation.ADOPT_TRUNK: 0,
    Operation.RENAME_TRUNK: 0,
    Operation.RECORD_PROTECT: 0,
    Operation.CHANGE_DOMAIN: 11,
    Operation.IMPORT_PENDING: 11,
    Operation.DELETE_TRUNK: 12,
    Operation.RECORD_ROUTE: 13,
}
# A trunk's LiveKit end: after Exotel's end has what it needs (plan.livekit).
PARTNER_RANK: dict[Operation, int] = {
    Operation.LIVEKIT_CREATE: 10,
    Operation.LIVEKIT_ADOPT: 10,
    Operation.LIVEKIT_UPDATE: 10,
    Operation.LIVEKIT_DELETE: 11,
}
RANK: dict[Operation, int] = (
    TRUNK_RANK
    | PARTNER_RANK
    | {operation: rank for kind in KINDS for operation, rank in kind.rank.items()}
)
MANUAL_RANK = 11  # a manual step waits for everything apply can do on its trunk

# How a person does what the API (or the profile) cannot.
MANUAL_HOW: dict[Operation, str] = {
    Operation.RENAME_TRUNK: "rename the trunk in the Exotel dashboard",
    Operation.IMPORT_PENDING: "find its SID in the Exotel dashboard (Trunks) and run "
    "reconciler import --account ACCOUNT --trunk-sid SID=NAME (NAME: this trunk's), so it is "
    "recorded and not created twice",
    Operation.CHANGE_DOMAIN: "the API cannot change a trunk's domain_name: recreate the trunk, "
    "or set allow_replace: true to let the reconciler replace it",
} | {operation: how for kind in KINDS for operation, how in kind.by_hand.items()}


def rank(action: Action) -> int:
    return MANUAL_RANK if action.kind is Kind.MANUAL else RANK[action.operation]
