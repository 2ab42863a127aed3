"""What is known about an account: live state from Exotel, and the ledger's records.

The account's state is built by ``live.read`` (from the trunks ``exotel.client`` reads,
``exotel.records``), the ledger's records by ``live.ledger`` (which reads and writes the
file); both are consumed by ``live.pairing`` and ``plan``, which must not do I/O, hence
this separate, pure module. Also the digests the ledger keeps: a trunk's fingerprint and
each child's digest, by which drift is told apart from a manifest edit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.exotel.records import LiveTrunk
from reconciler.manifests.models import TrunkSpec

FORMAT_VERSION = 1  # of the ledger file


@dataclass(frozen=True)
class AccountState:
    """What one account looks like now, as far as this refresh looked."""

    account: str
    profile: str
    trunks: Mapping[str, LiveTrunk] = field(default_factory=dict)  # by SID: the ones read
    missing: frozenset[str] = frozenset()  # ledger SIDs Exotel no longer has
    listed: Mapping[str, str] | None = None  # name -> SID of every live trunk (full, refresh all)
    not_refreshed: frozenset[str] = frozenset()  # trunk names skipped by --refresh changed
    scope: frozenset[str] | None = None  # the trunk names read, when not all of them were
    unreadable: Mapping[str, str] = field(default_factory=dict)  # SID -> why it failed (drift)
    calls: int = 0  # API requests this read made


@dataclass(frozen=True)
class TrunkEntry:
    sid: str
    protect: bool = False
    alias: str | None = None
    credentials: Mapping[str, int] = field(default_factory=dict)  # username -> password_version
    fingerprint: str | None = None
    # "resource:key" -> digest of that child as last applied: drift is told apart from a
    # manifest edit per child, so an edit elsewhere on the trunk hides no hand change.
    parts: Mapping[str, str] = field(default_factory=dict)
    # username -> a check of the password last set (live.password_check), never the password
    checks: Mapping[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        document = {
            "sid": self.sid,
            "protect": self.protect,
            "alias": self.alias,
            "credentials": {
                name: {
                    "password_version": version,
                    **({"password_check": self.checks[name]} if name in self.checks else {}),
                }
                for name, version in sorted(self.credentials.items())
            },
            "fingerprint": self.fingerprint,
        }
        if self.parts:
            document["parts"] = dict(sorted(self.parts.items()))
        return document


@dataclass(frozen=True)
class PartnerEntry:
    """An object this account owns on a partner platform (LiveKit): the partner, its ID,
    a digest of the fields last applied (drift is told apart from a manifest edit) and,
    for an outbound trunk, the password_version it was given."""

    partner: str
    id: str
    digest: str | None = None
    password_version: int | None = None

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"partner": self.partner, "id": self.id}
        if self.digest is not None:
            document["digest"] = self.digest
        if self.password_version is not None:
            document["password_version"] = self.password_version
        return document


@dataclass(frozen=True)
class Ledger:
    account: str
    account_sid: str
    trunks: Mapping[str, TrunkEntry] = field(default_factory=dict)
    # Trunk names whose create may have succeeded without our knowing its SID (profile
    # minimal cannot list trunks to find out): never created again until imported.
    pending: tuple[str, ...] = ()
    # DID -> fingerprint of the route last applied: plans show route changes against it.
    routes: Mapping[str, str] = field(default_factory=dict)
    # DID -> the route last applied (no secrets in routes), so a change is shown field by
    # field; absent for routes recorded before these were kept.
    route_documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # "<trunk>/<kind>" -> the partner object (a LiveKit trunk or dispatch rule) it owns
    partner_objects: Mapping[str, PartnerEntry] = field(default_factory=dict)

    def by_sid(self) -> dict[str, str]:
        return {entry.sid: name for name, entry in self.trunks.items()}

    def with_trunk(self, name: str, entry: TrunkEntry | None) -> Ledger:
        """A copy with ``name`` set to ``entry`` (or removed when None)."""
        trunks = {key: value for key, value in self.trunks.items() if key != name}
        if entry is not None:
            trunks[name] = entry
        pending = tuple(p for p in self.pending if p != name or entry is None)
        return replace(self, trunks=trunks, pending=pending)

    def with_trunk_renamed(self, old: str, new: str) -> Ledger:
        """A copy with trunk ``old`` held as ``new``, and its partner objects with it
        (their keys start with the trunk's name); an object already held under the new
        name is kept."""
        entry = self.trunks.get(old)
        renamed = self.with_trunk(old, None)
        if entry is not None:
            renamed = renamed.with_trunk(new, entry)
        objects = dict(self.partner_objects)
        for key in [k for k in objects if k.startswith(f"{old}/")]:
            moved = objects.pop(key)
            objects.setdefault(f"{new}/{key[len(old) + 1 :]}", moved)
        return replace(renamed, partner_objects=objects)

    def with_route(
        self, did: str, fingerprint_: str | None, document: Mapping[str, Any] | None = None
    ) -> Ledger:
        routes = {key: value for key, value in self.routes.items() if key != did}
        documents = {key: value for key, value in self.route_documents.items() if key != did}
        if fingerprint_ is not None:
            routes[did] = fingerprint_
            if document is not None:
                documents[did] = document
        return replace(self, routes=routes, route_documents=documents)

    def with_partner_object(self, key: str, entry: PartnerEntry | None) -> Ledger:
        """A copy with the partner object at ``key`` set (or forgotten when None)."""
        objects = {name: value for name, value in self.partner_objects.items() if name != key}
        if entry is not None:
            objects[key] = entry
        return replace(self, partner_objects=objects)

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "account": self.account,
            "account_sid": self.account_sid,
            "trunks": {name: self.trunks[name].document() for name in sorted(self.trunks)},
        }
        if self.pending:
            document["pending_creates"] = sorted(self.pending)
        if self.routes:
            document["routes"] = dict(sorted(self.routes.items()))
        if self.route_documents:
            document["route_documents"] = dict(sorted(self.route_documents.items()))
        if self.partner_objects:
            document["partner_objects"] = {
                key: self.partner_objects[key].document() for key in sorted(self.partner_objects)
            }
        return document


def sha256_of(value: Any) -> str:
    """``sha256:<hex>`` of a JSON-able value in canonical form (sorted keys, no spaces):
    checksums of plans, fingerprints of trunks and routes, digests of children."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fingerprint(spec: TrunkSpec) -> str:
    """A stable digest of a trunk's desired state (secret references left out)."""
    document = spec.model_dump(mode="json", exclude={"partner"})  # the partner end has its own
    for credential in document.get("credentials", []):
        credential.pop("password", None)
    return sha256_of(document)


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value (a child's desired fields)."""
    return sha256_of(value).removeprefix("sha256:")[:16]
