"""Whitelisted-IP endpoints (the trunk's ACL): add, list, change, remove.

Called through the sandbox's route table. Rules from docs/exotel-api.md section 6a: a bare
public IPv4 address, an integer mask 16-32 (default 32), host bits kept as sent,
duplicates keyed on ip + mask.
"""

from __future__ import annotations

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import Reply, duplicate, missing, single
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import Trunk, WhitelistedIp


def _check_free(trunk: Trunk, ip: str, mask: int, *, ignore: str | None = None) -> None:
    for entry in trunk.whitelisted_ips.values():
        if entry.id != ignore and entry.ip == ip and entry.mask == mask:
            raise duplicate(f"Unable to Whitelist-ip with ip {ip}")


def add_ip(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw_ip = rules.opt_str(body, "ip")
    trunk = call.trunk()
    ip = str(rules.check_public_ipv4(rules.required(raw_ip, "ip")))
    mask = 32 if body.get("mask") is None else rules.check_mask(body["mask"])
    _check_free(trunk, ip, mask)
    now = call.now()
    entry = WhitelistedIp(call.new_id(), ip, mask, trunk.trunk_sid, now, now)
    trunk.whitelisted_ips[entry.id] = entry
    return single(entry.api())


def list_ips(call: ApiRequest) -> Reply:
    return paginate(call, newest_first(call.trunk().whitelisted_ips), WhitelistedIp.api)


def update_ip(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw_ip = rules.opt_str(body, "ip")
    trunk = call.trunk()
    entry = call.child(trunk.whitelisted_ips, call.params["id"])
    if raw_ip is None and body.get("mask") is None:
        raise missing("ip")
    ip = entry.ip if raw_ip is None else str(rules.check_public_ipv4(raw_ip))
    mask = entry.mask if body.get("mask") is None else rules.check_mask(body["mask"])
    _check_free(trunk, ip, mask, ignore=entry.id)
    entry.ip, entry.mask, entry.date_updated = ip, mask, call.now()
    return single(entry.api())


def remove_ip(call: ApiRequest) -> Reply:
    # An IP still used by an IP destination may go: clients order deletes themselves.
    return single(call.remove_child(call.trunk().whitelisted_ips).api())
