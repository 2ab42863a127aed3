"""What each operation is: its order, whether profile ``minimal`` has it, how to do it by hand.

Used by ``plan.build`` (to turn changes into operations, manual steps or replacements),
``plan.order`` (ranks) and ``apply`` (which has a handler for every operation that is
not manual-only; a test checks that the tables and the handlers are complete). Pure
tables, from docs/exotel-api.md (the endpoints profile ``minimal`` lacks) and
docs/architecture.md (the order).
"""

from __future__ import annotations

from reconciler.plan.actions import Action, Kind, Operation
from reconciler.plan.diff import Op, Resource

# Operations the minimal profile lacks (docs/exotel-api.md: the endpoints it answers 404).
NOT_IN_MINIMAL = frozenset(
    {
        Operation.RENAME_TRUNK,
        Operation.UNMAP_NUMBER,
        Operation.DELETE_IP,
        Operation.UPDATE_DESTINATION,
        Operation.DELETE_DESTINATION,
        Operation.DELETE_ALIAS,
        Operation.UPDATE_CREDENTIAL,
    }
)
# What profile minimal does instead, where it can: a credential's password is rotated by
# deleting and re-creating it (the only credential calls it has).
MINIMAL_SUBSTITUTES = {Operation.UPDATE_CREDENTIAL: Operation.REPLACE_CREDENTIAL}
# Operations apply never performs: a person does them.
MANUAL_ONLY = frozenset({Operation.CHANGE_DOMAIN, Operation.IMPORT_PENDING})

OPERATIONS: dict[tuple[Resource, Op], Operation] = {
    (Resource.PHONE_NUMBER, Op.ADD): Operation.MAP_NUMBER,
    (Resource.PHONE_NUMBER, Op.MODIFY): Operation.SET_MODE,
    (Resource.PHONE_NUMBER, Op.REMOVE): Operation.UNMAP_NUMBER,
    (Resource.WHITELISTED_IP, Op.ADD): Operation.ADD_IP,
    (Resource.WHITELISTED_IP, Op.REMOVE): Operation.DELETE_IP,
    (Resource.DESTINATION_URI, Op.ADD): Operation.ADD_DESTINATION,
    (Resource.DESTINATION_URI, Op.MODIFY): Operation.UPDATE_DESTINATION,
    (Resource.DESTINATION_URI, Op.REMOVE): Operation.DELETE_DESTINATION,
    (Resource.ALIAS, Op.ADD): Operation.SET_ALIAS,
    (Resource.ALIAS, Op.MODIFY): Operation.SET_ALIAS,
    (Resource.ALIAS, Op.REMOVE): Operation.DELETE_ALIAS,
    (Resource.CREDENTIAL, Op.ADD): Operation.ADD_CREDENTIAL,
    (Resource.CREDENTIAL, Op.MODIFY): Operation.UPDATE_CREDENTIAL,
    (Resource.CREDENTIAL, Op.REMOVE): Operation.DELETE_CREDENTIAL,
}
KIND = {Op.ADD: Kind.CREATE, Op.MODIFY: Kind.UPDATE, Op.REMOVE: Kind.DELETE}

# Order of execution, lower first: trunks; deletes that free things (credentials, the
# alias, destinations before the IPs they need); then adds (IPs before the destinations
# they whitelist, DIDs before the alias that names one, credentials); DIDs are unmapped
# after the new ones are mapped (make before break: an interrupt never leaves a trunk
# without numbers; a DID moving to another trunk is still unmapped first, by its
# dependency); manual steps; trunk deletes last; routes, ledger only, after all.
RANK: dict[Operation, int] = {
    Operation.CREATE_TRUNK: 0,
    Operation.REPLACE_TRUNK: 0,
    Operation.ADOPT_TRUNK: 0,
    Operation.RENAME_TRUNK: 0,
    Operation.RECORD_PROTECT: 0,
    Operation.DELETE_CREDENTIAL: 1,
    Operation.REPLACE_CREDENTIAL: 1,
    Operation.DELETE_ALIAS: 2,
    Operation.UNMAP_NUMBER: 10,
    Operation.DELETE_DESTINATION: 4,
    Operation.DELETE_IP: 5,
    Operation.ADD_IP: 6,
    Operation.ADD_DESTINATION: 7,
    Operation.UPDATE_DESTINATION: 7,
    Operation.MAP_NUMBER: 8,
    Operation.SET_MODE: 8,
    Operation.SET_ALIAS: 9,
    Operation.ADD_CREDENTIAL: 10,
    Operation.UPDATE_CREDENTIAL: 10,
    Operation.CHANGE_DOMAIN: 11,
    Operation.IMPORT_PENDING: 11,
    Operation.DELETE_TRUNK: 12,
    Operation.RECORD_ROUTE: 13,
}
MANUAL_RANK = 11  # a manual step waits for everything apply can do on its trunk

# How a person does what the API (or the profile) cannot.
MANUAL_HOW: dict[Operation, str] = {
    Operation.RENAME_TRUNK: "rename the trunk in the Exotel dashboard",
    Operation.UNMAP_NUMBER: "unmap this DID from the trunk in the Exotel dashboard",
    Operation.DELETE_IP: "remove this IP from the trunk's ACL in the Exotel dashboard",
    Operation.UPDATE_DESTINATION: "change this destination's priority/weight in the "
    "Exotel dashboard",
    Operation.DELETE_DESTINATION: "remove this destination from the trunk in the Exotel dashboard",
    Operation.DELETE_ALIAS: "clear the trunk's caller ID alias in the Exotel dashboard",
    Operation.IMPORT_PENDING: "find its SID in the Exotel dashboard (Trunks) and run "
    "reconciler import --account ACCOUNT --trunk-sid SID=NAME (NAME: this trunk's), so it is "
    "recorded and not created twice",
    Operation.CHANGE_DOMAIN: "the API cannot change a trunk's domain_name: recreate the trunk, "
    "or set allow_replace: true to let the reconciler replace it",
}


def rank(action: Action) -> int:
    return MANUAL_RANK if action.kind is Kind.MANUAL else RANK[action.operation]
