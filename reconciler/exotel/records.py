"""What Exotel holds, in the manifests' canonical form: the client's answers as records.

Built by ``ExotelClient`` from Exotel's answers (the only place that knows their field
names); read by ``live``, ``plan`` and the importer. Pure, frozen data. Children are
keyed the way the manifests key them: DIDs by E.164 number, whitelisted IPs by
``a.b.c.d/nn``, destinations by canonical URI, credentials by username; each keeps the
API's id, which updates and deletes need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ListedTrunk:
    """A trunk as the trunk list shows it (profile full)."""

    sid: str
    name: str
    nso_code: str | None = None
    domain_name: str | None = None


@dataclass(frozen=True)
class LiveNumber:
    id: str
    mode: str  # canonical: the API's null reads as "pstn"


@dataclass(frozen=True)
class LiveDestination:
    id: str
    priority: int
    weight: int


@dataclass(frozen=True)
class LiveCredential:
    id: str
    friendly_name: str | None


@dataclass(frozen=True)
class LiveTrunk:
    sid: str
    # None when the profile cannot read the trunk itself (minimal has no trunk list).
    name: str | None = None
    nso_code: str | None = None
    domain_name: str | None = None
    numbers: Mapping[str, LiveNumber] = field(default_factory=dict)
    ips: Mapping[str, str] = field(default_factory=dict)  # canonical ip/mask -> id
    destinations: Mapping[str, LiveDestination] = field(default_factory=dict)
    credentials: Mapping[str, LiveCredential] = field(default_factory=dict)
    alias: str | None = None
    alias_read: bool = False  # False when settings are unreadable: the ledger's alias stands in
