"""What each kind of child a trunk carries is, described once.

A trunk carries five kinds of child: DIDs, whitelisted IPs, destination URIs, the
outbound alias and SIP credentials. Each is one :class:`ChildKind` (in the spirit of
octoDNS's record classes): its key; the fields a plan shows, as the manifest wants them
and as Exotel has them; the API operations that add, change and remove it, with their
rank; which of those profile ``minimal`` lacks and how a person does them instead; and
how ``import`` writes it back as manifest. ``plan.diff`` pairs children through it,
``plan.operations`` gathers its operations, ranks and how-tos, ``plan.rails`` counts a
trunk's children with it, and ``pipeline.importing`` writes manifests with it. Apply's
handlers perform the operations (a test checks that each has one).

On the plan's side, adding a kind is one entry in :data:`KINDS` and its handlers in
``apply.handlers``; it also needs its field on ``TrunkSpec``, the client calls that read
and write it, and the sandbox's endpoints (docs/architecture.md, "Adding a child
resource kind", has every step).

Ranks order execution, lower first (``plan.order``): 0 the trunk itself; 1-5 deletes
that free things (credentials, the alias, destinations before the IPs they need); 6-10
adds (IPs before the destinations they whitelist, DIDs before the alias that names one,
credentials), with DIDs unmapped at 10, after the new ones are mapped (make before
break: an interrupt never leaves a trunk without numbers); 11 manual steps; 12 trunk
deletes; 13 routes, which live in the ledger only. ``plan.operations`` holds the ranks of
the trunk's own operations.

Pure data. Secrets never enter it: a credential's password shows as ``(sensitive)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.exotel.records import LiveTrunk
from reconciler.live.state import TrunkEntry
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import Operation, Resource

SENSITIVE = "(sensitive)"

Fields = dict[str, Any]


class Op(StrEnum):
    """What a change does to one child."""

    ADD = "add"
    REMOVE = "remove"
    MODIFY = "modify"


@dataclass(frozen=True)
class Observed:
    """A child as Exotel has it: its fields, and the API's id where it has one."""

    fields: Fields
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChildKind:
    resource: Resource
    # The trunk's manifest field that lists (or holds) children of this kind.
    manifest_field: str
    # key -> fields, as the plan shows them (no secret values).
    desired: Callable[[TrunkSpec], dict[str, Fields]]
    # key -> fields and id; the ledger entry stands in for what the API cannot read.
    observed: Callable[[LiveTrunk, TrunkEntry | None], dict[str, Observed]]
    operations: Mapping[Op, Operation]
    # Changes the diff can never produce, and why (a test checks each change is one or
    # the other).
    impossible: Mapping[Op, str] = field(default_factory=dict)
    rank: Mapping[Operation, int]
    # The operations profile minimal lacks (docs/exotel-api.md: the endpoints it answers
    # 404), what it does instead where it can, and how a person does the rest.
    not_in_minimal: frozenset[Operation] = frozenset()
    substitutes: Mapping[Operation, Operation] = field(default_factory=dict)
    by_hand: Mapping[Operation, str] = field(default_factory=dict)
    # Import: the manifest value for a live trunk (empty: the field is left out); the
    # mapping names each credential's password variable (username -> NAME).
    written: Callable[[LiveTrunk, Mapping[str, str]], Any]
    # One per trunk, keyed by the kind's own name (the alias).
    single: bool = False

    def label(self, key: str) -> str:
        """How a plan names one child: ``whitelisted_ip 1.2.3.4/32``, ``alias``."""
        return str(self.resource) if self.single else f"{self.resource} {key}"


# -- DIDs -----------------------------------------------------------------------------


def _numbers_observed(trunk: LiveTrunk, _: TrunkEntry | None) -> dict[str, Observed]:
    return {
        number: Observed({"number": number, "mode": found.mode}, found.id)
        for number, found in trunk.numbers.items()
    }


def _numbers_written(trunk: LiveTrunk, _: Mapping[str, str]) -> list[Any]:
    return [
        number if found.mode == "pstn" else {"number": number, "mode": found.mode}
        for number, found in sorted(trunk.numbers.items())
    ]


PHONE_NUMBER = ChildKind(
    resource=Resource.PHONE_NUMBER,
    manifest_field="phone_numbers",
    desired=lambda spec: {
        n.number: {"number": n.number, "mode": n.mode} for n in spec.phone_numbers
    },
    observed=_numbers_observed,
    operations={
        Op.ADD: Operation.MAP_NUMBER,
        Op.MODIFY: Operation.SET_MODE,
        Op.REMOVE: Operation.UNMAP_NUMBER,
    },
    rank={Operation.MAP_NUMBER: 8, Operation.SET_MODE: 8, Operation.UNMAP_NUMBER: 10},
    not_in_minimal=frozenset({Operation.UNMAP_NUMBER}),
    by_hand={Operation.UNMAP_NUMBER: "unmap this DID from the trunk in the Exotel dashboard"},
    written=_numbers_written,
)

# -- whitelisted IPs ------------------------------------------------------------------

WHITELISTED_IP = ChildKind(
    resource=Resource.WHITELISTED_IP,
    manifest_field="whitelisted_ips",
    desired=lambda spec: {ip: {"ip": ip} for ip in spec.whitelisted_ips},
    observed=lambda trunk, _: {ip: Observed({"ip": ip}, ip_id) for ip, ip_id in trunk.ips.items()},
    operations={Op.ADD: Operation.ADD_IP, Op.REMOVE: Operation.DELETE_IP},
    impossible={Op.MODIFY: "an IP is its address and mask: a change is a remove and an add"},
    rank={Operation.DELETE_IP: 5, Operation.ADD_IP: 6},
    not_in_minimal=frozenset({Operation.DELETE_IP}),
    by_hand={Operation.DELETE_IP: "remove this IP from the trunk's ACL in the Exotel dashboard"},
    written=lambda trunk, _: [ip.removesuffix("/32") for ip in sorted(trunk.ips)],
)

# -- destination URIs -----------------------------------------------------------------


def _destinations_observed(trunk: LiveTrunk, _: TrunkEntry | None) -> dict[str, Observed]:
    return {
        uri: Observed({"uri": uri, "priority": found.priority, "weight": found.weight}, found.id)
        for uri, found in trunk.destinations.items()
    }


def _destinations_written(trunk: LiveTrunk, _: Mapping[str, str]) -> list[Any]:
    return [
        uri
        if (found.priority, found.weight) == (0, 1)
        else {"uri": uri, "priority": found.priority, "weight": found.weight}
        for uri, found in sorted(trunk.destinations.items())
    ]


DESTINATION_URI = ChildKind(
    resource=Resource.DESTINATION_URI,
    manifest_field="destination_uris",
    desired=lambda spec: {
        d.uri: {"uri": d.uri, "priority": d.priority, "weight": d.weight}
        for d in spec.destination_uris
    },
    observed=_destinations_observed,
    operations={
        Op.ADD: Operation.ADD_DESTINATION,
        Op.MODIFY: Operation.UPDATE_DESTINATION,
        Op.REMOVE: Operation.DELETE_DESTINATION,
    },
    rank={
        Operation.DELETE_DESTINATION: 4,
        Operation.ADD_DESTINATION: 7,
        Operation.UPDATE_DESTINATION: 7,
    },
    not_in_minimal=frozenset({Operation.UPDATE_DESTINATION, Operation.DELETE_DESTINATION}),
    by_hand={
        Operation.UPDATE_DESTINATION: "change this destination's priority/weight in the "
        "Exotel dashboard",
        Operation.DELETE_DESTINATION: "remove this destination from the trunk in the Exotel "
        "dashboard",
    },
    written=_destinations_written,
)

# -- the outbound alias ---------------------------------------------------------------


def _alias_observed(trunk: LiveTrunk, entry: TrunkEntry | None) -> dict[str, Observed]:
    # Settings unreadable: the alias the ledger recorded stands in.
    alias = trunk.alias if trunk.alias_read else (entry.alias if entry else None)
    return {"alias": Observed({"alias": alias})} if alias else {}


ALIAS = ChildKind(
    resource=Resource.ALIAS,
    manifest_field="alias",
    desired=lambda spec: {"alias": {"alias": spec.alias}} if spec.alias else {},
    observed=_alias_observed,
    operations={
        Op.ADD: Operation.SET_ALIAS,
        Op.MODIFY: Operation.SET_ALIAS,
        Op.REMOVE: Operation.DELETE_ALIAS,
    },
    rank={Operation.DELETE_ALIAS: 2, Operation.SET_ALIAS: 9},
    not_in_minimal=frozenset({Operation.DELETE_ALIAS}),
    by_hand={Operation.DELETE_ALIAS: "clear the trunk's caller ID alias in the Exotel dashboard"},
    written=lambda trunk, _: trunk.alias,
    single=True,
)

# -- SIP credentials ------------------------------------------------------------------


def _credentials_desired(spec: TrunkSpec) -> dict[str, Fields]:
    return {
        c.username: {
            "username": c.username,
            "friendly_name": c.friendly_name,
            "password": SENSITIVE,
            "password_version": c.password_version,
        }
        for c in spec.credentials
    }


def _credentials_observed(trunk: LiveTrunk, entry: TrunkEntry | None) -> dict[str, Observed]:
    # The API never returns passwords: the ledger knows which version was set.
    versions = entry.credentials if entry else {}
    return {
        username: Observed(
            {
                "username": username,
                "friendly_name": found.friendly_name,
                "password": SENSITIVE,
                "password_version": versions.get(username),
            },
            found.id,
        )
        for username, found in trunk.credentials.items()
    }


def _credentials_written(trunk: LiveTrunk, variables: Mapping[str, str]) -> list[Any]:
    """Each password as a ``${VARIABLE}`` reference at version 1: the next apply sets it."""
    written = []
    for username, found in sorted(trunk.credentials.items()):
        credential: dict[str, Any] = {
            "username": username,
            "password": f"${{{variables[username]}}}",
            "password_version": 1,
        }
        if found.friendly_name:
            credential["friendly_name"] = found.friendly_name
        written.append(credential)
    return written


CREDENTIAL = ChildKind(
    resource=Resource.CREDENTIAL,
    manifest_field="credentials",
    desired=_credentials_desired,
    observed=_credentials_observed,
    operations={
        Op.ADD: Operation.ADD_CREDENTIAL,
        Op.MODIFY: Operation.UPDATE_CREDENTIAL,
        Op.REMOVE: Operation.DELETE_CREDENTIAL,
    },
    rank={
        Operation.DELETE_CREDENTIAL: 1,
        Operation.REPLACE_CREDENTIAL: 1,
        Operation.ADD_CREDENTIAL: 10,
        Operation.UPDATE_CREDENTIAL: 10,
    },
    not_in_minimal=frozenset({Operation.UPDATE_CREDENTIAL}),
    # A password is rotated by deleting and re-creating the credential: the only
    # credential calls profile minimal has.
    substitutes={Operation.UPDATE_CREDENTIAL: Operation.REPLACE_CREDENTIAL},
    written=_credentials_written,
)

KINDS: tuple[ChildKind, ...] = (PHONE_NUMBER, WHITELISTED_IP, DESTINATION_URI, ALIAS, CREDENTIAL)
BY_RESOURCE: dict[Resource, ChildKind] = {kind.resource: kind for kind in KINDS}
