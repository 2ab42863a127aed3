"""Desired x live -> changes: keyed set arithmetic, then field by field.

Called by ``plan.trunks`` for each declared trunk paired with live state. Pure: no I/O, no API
knowledge beyond what the state holds. Identity is kept apart from content (as in
octoDNS): every child has a key (the DID, the ``ip/mask``, the destination URI, the
credential's username), keys are paired with set operations, and only paired items
are compared field by field. A change says what it is, not what to call: turning
changes into API operations, manual steps or replacements is ``plan.trunks``' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.exotel.records import LiveTrunk
from reconciler.live.state import TrunkEntry, digest
from reconciler.manifests.models import TrunkSpec

SENSITIVE = "(sensitive)"


class Resource(StrEnum):
    TRUNK = "trunk"
    PHONE_NUMBER = "phone_number"
    WHITELISTED_IP = "whitelisted_ip"
    DESTINATION_URI = "destination_uri"
    ALIAS = "alias"
    CREDENTIAL = "credential"
    ROUTE = "route"  # served by reconciler serve; recorded, never sent to Exotel


CHILDREN = (
    Resource.PHONE_NUMBER,
    Resource.WHITELISTED_IP,
    Resource.DESTINATION_URI,
    Resource.ALIAS,
    Resource.CREDENTIAL,
)


class Op(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    MODIFY = "modify"


@dataclass(frozen=True)
class Change:
    resource: Resource
    key: str
    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    fields: tuple[str, ...] = ()  # what differs, for MODIFY
    ids: Mapping[str, str] = field(default_factory=dict)  # the API's ids, for updates/deletes


def _pair(
    resource: Resource,
    desired: Mapping[str, Mapping[str, Any]],
    live: Mapping[str, Mapping[str, Any]],
    ids: Mapping[str, str],
) -> list[Change]:
    changes = []
    for key in desired.keys() - live.keys():
        changes.append(Change(resource, key, Op.ADD, None, desired[key]))
    for key in live.keys() - desired.keys():
        changes.append(Change(resource, key, Op.REMOVE, live[key], None, ids=_id(ids, key)))
    for key in desired.keys() & live.keys():
        before, after = live[key], desired[key]
        differ = tuple(name for name in after if before.get(name) != after[name])
        if differ:
            changes.append(Change(resource, key, Op.MODIFY, before, after, differ, _id(ids, key)))
    return sorted(changes, key=lambda change: change.key)


def _id(ids: Mapping[str, str], key: str) -> dict[str, str]:
    return {"id": ids[key]} if key in ids else {}


def desired_children(spec: TrunkSpec) -> dict[Resource, dict[str, dict[str, Any]]]:
    """The trunk's children as the plan shows them: key -> fields (no secret values)."""
    return {
        Resource.PHONE_NUMBER: {
            n.number: {"number": n.number, "mode": n.mode} for n in spec.phone_numbers
        },
        Resource.WHITELISTED_IP: {ip: {"ip": ip} for ip in spec.whitelisted_ips},
        Resource.DESTINATION_URI: {
            d.uri: {"uri": d.uri, "priority": d.priority, "weight": d.weight}
            for d in spec.destination_uris
        },
        Resource.ALIAS: {"alias": {"alias": spec.alias}} if spec.alias else {},
        Resource.CREDENTIAL: {
            c.username: {
                "username": c.username,
                "friendly_name": c.friendly_name,
                "password": SENSITIVE,
                "password_version": c.password_version,
            }
            for c in spec.credentials
        },
    }


def parts(spec: TrunkSpec) -> dict[str, str]:
    """``resource:key`` -> digest of each desired child (no secret: passwords are
    references, and stand as a marker)."""
    return {
        f"{resource}:{key}": digest(fields)
        for resource, wanted in desired_children(spec).items()
        for key, fields in wanted.items()
    }


def children(
    spec: TrunkSpec | None, live: LiveTrunk | None, entry: TrunkEntry | None
) -> list[Change]:
    """Every child change that turns ``live`` into ``spec`` (either may be absent)."""
    wanted = desired_children(spec) if spec else {resource: {} for resource in CHILDREN}
    have: dict[Resource, dict[str, dict[str, Any]]] = {resource: {} for resource in CHILDREN}
    ids: dict[Resource, dict[str, str]] = {resource: {} for resource in CHILDREN}
    if live is not None:
        for number, found in live.numbers.items():
            have[Resource.PHONE_NUMBER][number] = {"number": number, "mode": found.mode}
            ids[Resource.PHONE_NUMBER][number] = found.id
        for ip, ip_id in live.ips.items():
            have[Resource.WHITELISTED_IP][ip] = {"ip": ip}
            ids[Resource.WHITELISTED_IP][ip] = ip_id
        for uri, destination in live.destinations.items():
            have[Resource.DESTINATION_URI][uri] = {
                "uri": uri,
                "priority": destination.priority,
                "weight": destination.weight,
            }
            ids[Resource.DESTINATION_URI][uri] = destination.id
        alias = live.alias if live.alias_read else (entry.alias if entry else None)
        if alias:
            have[Resource.ALIAS]["alias"] = {"alias": alias}
        versions = entry.credentials if entry else {}
        for username, credential in live.credentials.items():
            have[Resource.CREDENTIAL][username] = {
                "username": username,
                "friendly_name": credential.friendly_name,
                "password": SENSITIVE,
                # The API never returns passwords: the ledger knows which version was set.
                "password_version": versions.get(username),
            }
            ids[Resource.CREDENTIAL][username] = credential.id
    changes: list[Change] = []
    for resource in CHILDREN:
        changes += _pair(resource, wanted[resource], have[resource], ids[resource])
    return changes


def trunk_fields(spec: TrunkSpec, live: LiveTrunk) -> tuple[str, ...]:
    """Which of the trunk's own fields differ (only what the profile could read)."""
    differ = []
    if live.name is not None and live.name != spec.name:
        differ.append("name")
    if live.domain_name is not None and live.domain_name != spec.domain_name:
        differ.append("domain_name")
    if live.nso_code is not None and live.nso_code != spec.nso_code:
        differ.append("nso_code")
    return tuple(differ)
