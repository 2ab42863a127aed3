"""What each capability profile can do, and the order operations run in.

Used by ``plan`` (to turn changes into operations, manual steps or replacements) and
``apply`` (to know what each operation means). Pure tables, from exotel-api.md section
3 (the rows marked "no" are what profile ``minimal`` lacks) and DESIGN.md section 5
(the order).
"""

from __future__ import annotations

from reconciler.actions import Kind
from reconciler.diff import Op, Resource

# Operations the minimal profile lacks (exotel-api.md section 3, rows marked "no").
NOT_IN_MINIMAL = frozenset(
    {
        "rename_trunk",
        "unmap_number",
        "delete_ip",
        "update_destination",
        "delete_destination",
        "delete_alias",
        "update_credential",
    }
)
OPERATIONS: dict[tuple[Resource, Op], str] = {
    (Resource.PHONE_NUMBER, Op.ADD): "map_number",
    (Resource.PHONE_NUMBER, Op.MODIFY): "set_mode",
    (Resource.PHONE_NUMBER, Op.REMOVE): "unmap_number",
    (Resource.WHITELISTED_IP, Op.ADD): "add_ip",
    (Resource.WHITELISTED_IP, Op.REMOVE): "delete_ip",
    (Resource.DESTINATION_URI, Op.ADD): "add_destination",
    (Resource.DESTINATION_URI, Op.MODIFY): "update_destination",
    (Resource.DESTINATION_URI, Op.REMOVE): "delete_destination",
    (Resource.ALIAS, Op.ADD): "set_alias",
    (Resource.ALIAS, Op.MODIFY): "set_alias",
    (Resource.ALIAS, Op.REMOVE): "delete_alias",
    (Resource.CREDENTIAL, Op.ADD): "add_credential",
    (Resource.CREDENTIAL, Op.MODIFY): "update_credential",
    (Resource.CREDENTIAL, Op.REMOVE): "delete_credential",
}
KIND = {Op.ADD: Kind.CREATE, Op.MODIFY: Kind.UPDATE, Op.REMOVE: Kind.DELETE}
# Order of execution: lower first (DESIGN.md section 5).
RANK = {
    "create_trunk": 0,
    "replace_trunk": 0,
    "adopt_trunk": 0,
    "rename_trunk": 0,
    "delete_credential": 1,
    "replace_credential": 1,
    "delete_alias": 2,
    "unmap_number": 3,
    "delete_destination": 4,
    "delete_ip": 5,
    "add_ip": 6,
    "add_destination": 7,
    "update_destination": 7,
    "map_number": 8,
    "set_mode": 8,
    "set_alias": 9,
    "add_credential": 10,
    "update_credential": 10,
    "manual": 11,
    "import_pending": 11,
    "delete_trunk": 12,
    "record_route": 13,
}
MANUAL_HOW = {
    "rename_trunk": "rename the trunk in the Exotel dashboard",
    "unmap_number": "unmap this DID from the trunk in the Exotel dashboard",
    "delete_ip": "remove this IP from the trunk's ACL in the Exotel dashboard",
    "update_destination": "change this destination's priority/weight in the Exotel dashboard",
    "delete_destination": "remove this destination from the trunk in the Exotel dashboard",
    "delete_alias": "clear the trunk's caller ID alias in the Exotel dashboard",
    "import_pending": "find its SID in the Exotel dashboard (Trunks) and run "
    "reconciler import --account ACCOUNT --trunk-sid SID, so it is not created twice",
    "change_domain": "the API cannot change a trunk's domain_name: recreate the trunk, "
    "or set allow_replace: true to let the reconciler replace it",
}
