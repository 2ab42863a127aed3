"""Trunk endpoints: create, list, update, delete (docs/exotel-api.md sections 3 and 4).

Called through the sandbox's route table. Each handler checks in the API's order:
body types (1007), the trunk exists (404/1000), field rules (1001/1002), duplicates
(1008); then it mutates the store and answers.
"""

from __future__ import annotations

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import Reply, duplicate, missing, single
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import Trunk


def create_trunk(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw = {key: rules.opt_str(body, key) for key in ("trunk_name", "nso_code", "domain_name")}
    name = rules.check_trunk_name(rules.required(raw["trunk_name"], "trunk_name"))
    nso_code = rules.check_nso_code(rules.required(raw["nso_code"], "nso_code"))
    domain_name = rules.check_domain_name(rules.required(raw["domain_name"], "domain_name"))
    if name in call.account.names:
        raise duplicate(f"Trunk with name '{name}' already exists")
    now = call.now()
    trunk = Trunk(
        account_sid=call.account.sid,
        trunk_sid=call.store.new_trunk_sid(),
        trunk_name=name,
        nso_code=nso_code,
        domain_name=domain_name,
        auth_type="IP-WHITELIST",
        status="active",
        date_created=now,
        date_updated=now,
    )
    call.account.add_trunk(trunk)
    return single(trunk.api())


def list_trunks(call: ApiRequest) -> Reply:
    wanted = call.query.get("trunk_sid")
    trunks = newest_first(call.account.trunks)
    if wanted is not None:
        trunks = [trunk for trunk in trunks if trunk.trunk_sid == wanted]
    return paginate(call, trunks, Trunk.api)


def update_trunk(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    name = rules.opt_str(body, "trunk_name")
    nso_code = rules.opt_str(body, "nso_code")
    auth_type = rules.opt_str(body, "auth_type")
    trunk = call.trunk()
    if name is None and nso_code is None and auth_type is None:
        raise missing("trunk_name")
    if name is not None:
        rules.check_trunk_name(name)
    if nso_code is not None:
        rules.check_nso_code(nso_code)
    if auth_type is not None:
        rules.check_auth_type(auth_type)
    if name is not None and name != trunk.trunk_name:
        if name in call.account.names:
            raise duplicate(f"Trunk with name '{name}' already exists")
        del call.account.names[trunk.trunk_name]
        call.account.names[name] = trunk.trunk_sid
        trunk.trunk_name = name
    trunk.nso_code = nso_code or trunk.nso_code
    trunk.auth_type = auth_type or trunk.auth_type
    trunk.date_updated = call.now()
    return single(trunk.api())


def delete_trunk(call: ApiRequest) -> Reply:
    # DELETE takes the SID in the query, not the path (docs/exotel-api.md section 3).
    trunk_sid = call.query.get("trunk_sid")
    if not trunk_sid:
        raise missing("trunk_sid")
    trunk = call.account.trunk(trunk_sid)
    # Everything on the trunk goes with it: DIDs, ACL, destinations, credentials, settings.
    call.account.remove_trunk(trunk)
    return single(trunk.api())
