"""Destination-URI endpoints: the batch add (200 or 207 per item), list, change, remove.

Called through the sandbox's route table. Rules from docs/exotel-api.md sections 4 and 6a:
``host:port;transport=tls|tcp``, stored with a ``sip:`` prefix (never twice), host case
kept as sent; an IP host must lie inside a whitelisted network of the same trunk; an
exact duplicate is an item 409/1008; optional ``priority`` and ``weight`` at creation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import (
    JSON,
    Reply,
    batch,
    duplicate,
    invalid,
    missing,
    per_item,
    single,
)
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import Destination, Trunk


def _stored_form(host: str, port: int, transport: str) -> str:
    # "sip:" once and in lower case; the host's case kept as sent (docs/exotel-api.md 6a).
    return f"sip:{host}:{port};transport={transport}"


def _whitelisted(trunk: Trunk, address: ipaddress.IPv4Address) -> bool:
    return any(
        address in ipaddress.IPv4Network(f"{entry.ip}/{entry.mask}", strict=False)
        for entry in trunk.whitelisted_ips.values()
    )


def _typed_items(body: Mapping[str, Any]) -> list[tuple[str | None, int | None, int | None]]:
    items = rules.opt_list(body, "destinations")
    return [
        (
            rules.opt_str(item, "destination"),
            rules.opt_int(item, "priority"),
            rules.opt_int(item, "weight"),
        )
        for item in items or []
    ]


def _add_one(
    call: ApiRequest,
    trunk: Trunk,
    destination: str | None,
    priority: int | None,
    weight: int | None,
) -> JSON:
    destination = rules.required(destination, "destination")
    host, port, transport, address = rules.parse_destination(destination)
    if address is not None and not _whitelisted(trunk, address):
        raise invalid("Destination not whitelisted")
    priority = rules.check_priority_weight(0 if priority is None else priority, "priority")
    weight = rules.check_priority_weight(1 if weight is None else weight, "weight")
    stored = _stored_form(host, port, transport)
    # Hosts compare case-insensitively; port and transport are already canonical.
    if any(d.destination.lower() == stored.lower() for d in trunk.destination_uris.values()):
        raise duplicate(f"Destination {stored} already exists on trunk {trunk.trunk_sid}")
    now = call.now()
    entry = Destination(call.new_id(), stored, priority, weight, trunk.trunk_sid, now, now)
    trunk.destination_uris[entry.id] = entry
    return entry.api()


def add_destinations(call: ApiRequest) -> Reply:
    items = _typed_items(rules.body_object(call.body))
    trunk = call.trunk()
    if not items:
        raise missing("destinations")
    return batch(per_item(items, lambda item: _add_one(call, trunk, *item)))


def list_destinations(call: ApiRequest) -> Reply:
    return paginate(call, newest_first(call.trunk().destination_uris), Destination.api)


def update_destination(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    priority = rules.opt_int(body, "priority")
    weight = rules.opt_int(body, "weight")
    entry = call.child(call.trunk().destination_uris, call.params["id"])
    if priority is None and weight is None:
        raise missing("priority")
    if priority is not None:
        rules.check_priority_weight(priority, "priority")
    if weight is not None:
        rules.check_priority_weight(weight, "weight")
    entry.priority = entry.priority if priority is None else priority
    entry.weight = entry.weight if weight is None else weight
    entry.date_updated = call.now()
    return single(entry.api())


def remove_destination(call: ApiRequest) -> Reply:
    return single(call.remove_child(call.trunk().destination_uris).api())
