"""Live state, as read from Exotel and put in the manifests' canonical form.

Built by ``live`` (which does the reading) and consumed by ``diff`` and ``plan``
(which must not do I/O, hence this separate, pure module). Children are keyed the way
the manifests key them: DIDs by E.164 number, whitelisted IPs by ``a.b.c.d/nn``,
destinations by canonical URI, credentials by username; each keeps the API's id,
which updates and deletes need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class AccountState:
    """What one account looks like now, as far as this refresh looked."""

    account: str
    profile: str
    trunks: Mapping[str, LiveTrunk] = field(default_factory=dict)  # by SID: the ones read
    missing: frozenset[str] = frozenset()  # ledger SIDs Exotel no longer has
    listed: Mapping[str, str] | None = None  # name -> SID of every live trunk (full, refresh all)
    not_refreshed: frozenset[str] = frozenset()  # trunk names skipped by --refresh changed
    calls: int = 0  # API requests this read made
