"""DID endpoints: map, list, change mode, unmap, and the account-wide trunk-maps lookup.

Called through the sandbox's route table. A DID can sit on one trunk of an account
only: mapping it anywhere again is a duplicate (1008), as measured live.
"""

from __future__ import annotations

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import Reply, duplicate, invalid, missing, not_found, single
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import PhoneNumber


def map_number(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw_number = rules.opt_str(body, "phone_number")
    raw_mode = rules.opt_str(body, "mode")
    trunk = call.trunk()
    number = rules.check_e164(rules.required(raw_number, "phone_number"))
    mode = rules.check_mode(raw_mode)
    if number in call.account.dids:
        raise duplicate(f"Unable to create DidTrunkMapping with TrunkSid {trunk.trunk_sid}")
    now = call.now()
    mapping = PhoneNumber(call.new_id(), number, trunk.trunk_sid, mode, now, now)
    trunk.phone_numbers[mapping.id] = mapping
    call.account.dids[number] = (trunk.trunk_sid, mapping.id)
    return single(mapping.api())


def list_numbers(call: ApiRequest) -> Reply:
    return paginate(call, newest_first(call.trunk().phone_numbers), PhoneNumber.api)


def update_number(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw_number = rules.opt_str(body, "phone_number")
    raw_mode = rules.opt_str(body, "mode")
    mapping = call.child(call.trunk().phone_numbers, call.params["id"])
    number = rules.required(raw_number, "phone_number")
    if raw_mode is None:
        raise missing("mode")
    mode = rules.check_mode(raw_mode)
    if number != mapping.phone_number:
        raise invalid("phone_number does not match the number mapped with this id")
    mapping.mode = mode
    mapping.date_updated = call.now()
    return single(mapping.api())


def unmap_number(call: ApiRequest) -> Reply:
    mapping = call.remove_child(call.trunk().phone_numbers)
    del call.account.dids[mapping.phone_number]
    return single(mapping.api())


def trunk_map(call: ApiRequest) -> Reply:
    exophone = call.query.get("exophone")
    wanted_trunk = call.query.get("trunk_sid")
    if wanted_trunk is not None:
        call.account.trunk(wanted_trunk)
    if not exophone:
        raise missing("exophone")
    if exophone.startswith(" "):
        # An unencoded "+" in a query string reads as a space: say so rather than 404.
        raise invalid(f"Invalid exophone {exophone!r}: encode + as %2B in the query")
    rules.check_e164(exophone, "exophone")
    found = call.account.dids.get(exophone)
    if found is None or (wanted_trunk is not None and found[0] != wanted_trunk):
        raise not_found(f"{exophone} is not mapped to a trunk")
    trunk_sid, mapping_id = found
    mapping = call.account.trunks[trunk_sid].phone_numbers[mapping_id]
    return single(
        {
            "exophone": exophone,
            "trunk_sid": trunk_sid,
            "phone_number_id": mapping_id,
            "mode": mapping.mode,
        }
    )
