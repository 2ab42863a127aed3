"""LiveKit's SIP objects as this tool compares them: the fields it manages, as plain data.

Called by ``plan.livekit`` (desired fields from a trunk's partner end; live fields from
what LiveKit lists) and by ``livekit.client`` (fields back into LiveKit's own protobuf
messages, from ``livekit-protocol``). Pure.

Only the fields below are managed; everything else on a LiveKit object (Krisp, ringing
timeouts, room presets) is the team's, kept as read when an object is replaced. A
password is never a field: the ledger keeps which ``password_version`` LiveKit's
outbound trunk was given, and apply sends the value straight from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from livekit.protocol import agent_dispatch as dispatch_pb
from livekit.protocol import sip as sip_pb

from reconciler.manifests.seam import End

Fields = Mapping[str, Any]
OWNER = "managed by exotel-reconciler"
SENSITIVE = "(sensitive)"


class ObjectKind(StrEnum):
    INBOUND_TRUNK = "inbound_trunk"
    OUTBOUND_TRUNK = "outbound_trunk"
    DISPATCH_RULE = "dispatch_rule"


LABEL = {
    ObjectKind.INBOUND_TRUNK: "inbound trunk",
    ObjectKind.OUTBOUND_TRUNK: "outbound trunk",
    ObjectKind.DISPATCH_RULE: "dispatch rule",
}
TRANSPORT = {
    "auto": sip_pb.SIP_TRANSPORT_AUTO,
    "udp": sip_pb.SIP_TRANSPORT_UDP,
    "tcp": sip_pb.SIP_TRANSPORT_TCP,
    "tls": sip_pb.SIP_TRANSPORT_TLS,
}
ENCRYPTION = {
    "disable": sip_pb.SIP_MEDIA_ENCRYPT_DISABLE,
    "allow": sip_pb.SIP_MEDIA_ENCRYPT_ALLOW,
    "require": sip_pb.SIP_MEDIA_ENCRYPT_REQUIRE,
}
HEADERS = {
    "none": sip_pb.SIP_NO_HEADERS,
    "x-headers": sip_pb.SIP_X_HEADERS,
    "all": sip_pb.SIP_ALL_HEADERS,
}


def _named(table: Mapping[str, int], value: int) -> str:
    return next((name for name, number in table.items() if number == value), str(value))


@dataclass(frozen=True)
class LiveObject:
    """One object LiveKit lists, reduced to the managed fields."""

    kind: ObjectKind
    id: str
    fields: Fields

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))


def metadata(end: End) -> str:
    return f"{OWNER}: {end.account}/{end.trunk}"


def wanted(end: End) -> tuple[ObjectKind, ...]:
    """The LiveKit objects a trunk's end needs: an inbound trunk and its dispatch rule
    when Exotel sends it calls, an outbound trunk when it places calls through Exotel."""
    kinds = []
    if end.takes_calls:
        kinds += [ObjectKind.INBOUND_TRUNK, ObjectKind.DISPATCH_RULE]
    if end.makes_calls:
        kinds.append(ObjectKind.OUTBOUND_TRUNK)
    return tuple(kinds)


def desired(end: End, kind: ObjectKind, inbound_id: str) -> dict[str, Any]:
    """What ``kind`` must say for this end. ``inbound_id``: the inbound trunk's ID, or a
    placeholder naming it while it is still to be created."""
    encryption = "allow" if end.transport == "tls" else "disable"  # Exotel offers SRTP on TLS
    common = {"name": f"exotel-{end.trunk}", "metadata": metadata(end)}
    if kind is ObjectKind.INBOUND_TRUNK:
        return {
            **common,
            "numbers": list(end.numbers),
            "allowed_addresses": list(end.exotel_addresses),
            "allowed_numbers": [],
            "auth_username": "",  # Exotel sends calls in without digest
            "headers_to_attributes": dict(sorted(end.attributes.items())),
            "include_headers": "x-headers",  # X-Exotel-CallSid and the routes' X- headers
            "media_encryption": encryption,
        }
    if kind is ObjectKind.OUTBOUND_TRUNK:
        return {
            **common,
            "address": f"{end.exotel_host}:{end.exotel_port}",
            "transport": end.transport,
            "numbers": list(end.outbound_numbers),
            "auth_username": end.credential.username if end.credential else "",
            "media_encryption": encryption,
        }
    rule: dict[str, Any] = (
        {"direct": {"room_name": end.dispatch.room}}
        if end.dispatch.room is not None
        else {"individual": {"room_prefix": end.room_prefix}}
    )
    return {
        **common,
        "trunk_ids": [inbound_id],
        "rule": rule,
        "agents": [end.dispatch.agent] if end.dispatch.agent else [],
    }


def password_version(end: End) -> int | None:
    return end.credential.password_version if end.credential is not None else None


# -- LiveKit's messages <-> fields ------------------------------------------------------


def from_inbound(info: sip_pb.SIPInboundTrunkInfo) -> LiveObject:
    return LiveObject(
        ObjectKind.INBOUND_TRUNK,
        info.sip_trunk_id,
        {
            "name": info.name,
            "metadata": info.metadata,
            "numbers": list(info.numbers),
            "allowed_addresses": list(info.allowed_addresses),
            "allowed_numbers": list(info.allowed_numbers),
            "auth_username": info.auth_username,
            "headers_to_attributes": dict(sorted(info.headers_to_attributes.items())),
            "include_headers": _named(HEADERS, info.include_headers),
            "media_encryption": _named(ENCRYPTION, info.media_encryption),
        },
    )


def from_outbound(info: sip_pb.SIPOutboundTrunkInfo) -> LiveObject:
    return LiveObject(
        ObjectKind.OUTBOUND_TRUNK,
        info.sip_trunk_id,
        {
            "name": info.name,
            "metadata": info.metadata,
            "address": info.address,
            "transport": _named(TRANSPORT, info.transport),
            "numbers": list(info.numbers),
            "auth_username": info.auth_username,
            "media_encryption": _named(ENCRYPTION, info.media_encryption),
        },
    )


def from_dispatch(info: sip_pb.SIPDispatchRuleInfo) -> LiveObject:
    which = info.rule.WhichOneof("rule")
    rule: dict[str, Any]
    if which == "dispatch_rule_direct":
        rule = {"direct": {"room_name": info.rule.dispatch_rule_direct.room_name}}
    elif which == "dispatch_rule_individual":
        rule = {"individual": {"room_prefix": info.rule.dispatch_rule_individual.room_prefix}}
    else:
        rule = {str(which or "none"): {}}
    for key in ("direct", "individual"):
        inner = getattr(info.rule, f"dispatch_rule_{key}")
        if key in rule and inner.pin:
            rule[key]["pin"] = SENSITIVE  # a PIN set by hand: shown as set, never its value
    return LiveObject(
        ObjectKind.DISPATCH_RULE,
        info.sip_dispatch_rule_id,
        {
            "name": info.name,
            "metadata": info.metadata,
            "trunk_ids": list(info.trunk_ids),
            "rule": rule,
            "agents": [a.agent_name for a in info.room_config.agents],
        },
    )


def inbound_message(
    fields: Fields, base: sip_pb.SIPInboundTrunkInfo | None = None
) -> sip_pb.SIPInboundTrunkInfo:
    """The inbound trunk to send: ``base`` (as read, keeping what is not managed) with
    the managed fields set."""
    info = sip_pb.SIPInboundTrunkInfo()
    if base is not None:
        info.CopyFrom(base)
    info.name, info.metadata = fields["name"], fields["metadata"]
    _set_list(info.numbers, fields["numbers"])
    _set_list(info.allowed_addresses, fields["allowed_addresses"])
    _set_list(info.allowed_numbers, fields["allowed_numbers"])
    info.auth_username = fields["auth_username"]
    if not fields["auth_username"]:
        info.auth_password = ""
    info.headers_to_attributes.clear()
    info.headers_to_attributes.update(fields["headers_to_attributes"])
    info.include_headers = HEADERS[fields["include_headers"]]
    info.media_encryption = ENCRYPTION[fields["media_encryption"]]
    return info


def outbound_message(
    fields: Fields, password: str, base: sip_pb.SIPOutboundTrunkInfo | None = None
) -> sip_pb.SIPOutboundTrunkInfo:
    info = sip_pb.SIPOutboundTrunkInfo()
    if base is not None:
        info.CopyFrom(base)
    info.name, info.metadata = fields["name"], fields["metadata"]
    info.address = fields["address"]
    info.transport = TRANSPORT[fields["transport"]]
    _set_list(info.numbers, fields["numbers"])
    info.auth_username = fields["auth_username"]
    info.auth_password = password
    info.media_encryption = ENCRYPTION[fields["media_encryption"]]
    return info


def dispatch_message(
    fields: Fields, base: sip_pb.SIPDispatchRuleInfo | None = None
) -> sip_pb.SIPDispatchRuleInfo:
    info = sip_pb.SIPDispatchRuleInfo()
    if base is not None:
        info.CopyFrom(base)
    info.name, info.metadata = fields["name"], fields["metadata"]
    _set_list(info.trunk_ids, fields["trunk_ids"])
    rule = fields["rule"]
    info.rule.Clear()
    if "direct" in rule:
        info.rule.dispatch_rule_direct.room_name = rule["direct"]["room_name"]
    else:
        info.rule.dispatch_rule_individual.room_prefix = rule["individual"]["room_prefix"]
    del info.room_config.agents[:]
    for name in fields["agents"]:
        info.room_config.agents.append(dispatch_pb.RoomAgentDispatch(agent_name=name))
    return info


def _set_list(target: Any, values: Any) -> None:
    del target[:]
    target.extend(values)


def shown(kind: ObjectKind, fields: Fields, version: int | None) -> dict[str, Any]:
    """A new object's fields as a plan shows them: the empty ones left out, the outbound
    trunk's password as its version only."""
    said = {name: value for name, value in fields.items() if value not in ("", [], {})}
    if kind is ObjectKind.OUTBOUND_TRUNK and fields.get("auth_username"):
        said["auth_password"] = f"{SENSITIVE} version {version}"
    return said
