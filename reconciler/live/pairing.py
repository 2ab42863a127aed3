"""Which ledger entry and which live trunk each declared trunk is: the one pairing rule.

Called by ``live.read`` (which trunks to read), ``plan.build`` (what to do with each),
the pipeline's verification after an apply, and ``routing.snapshot`` (which SID a route's
trunk name dials). Pure: takes the declared trunks, the ledger and, where the profile
can list trunks, the live names; returns a :class:`Pairing`. Written once, so every
stage agrees on identity (as octoDNS pairs records by ``(name, type)`` in one place).

A declared trunk is, in this order:

1. the ledger's trunk of its ``name`` (``MANAGED``), unless Exotel no longer lists that
   SID but lists another trunk of the name that the ledger does not own: then that one is
   adopted in its place (``ADOPT``, carrying the stale entry);
2. the ledger's trunk of its ``renamed_from`` (``RENAMED``: renamed in place), unless a
   live trunk the ledger does not own already has the new name (``RENAME_TAKEN``);
3. a live trunk of its name that the ledger does not know (``ADOPT``: recorded, never
   created twice), unless the ledger knows that SID under another name (``NAME_TAKEN``);
4. a trunk whose earlier create may have landed unseen (``PENDING``: import it first);
5. otherwise ``NEW``: it will be created.

Ledger entries no declared trunk pairs with are ``undeclared`` (pruned, or kept when
protected or when prune is off); live trunks nobody pairs with are ``unmanaged`` (never
touched). A blocked pair (``RENAME_TAKEN``, ``NAME_TAKEN``) carries the SID in the way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.live.state import Ledger, TrunkEntry
from reconciler.manifests.models import TrunkSpec


class Match(StrEnum):
    MANAGED = "managed"
    RENAMED = "renamed"
    RENAME_TAKEN = "rename_taken"
    ADOPT = "adopt"
    NAME_TAKEN = "name_taken"
    PENDING = "pending"
    NEW = "new"


@dataclass(frozen=True)
class Pair:
    spec: TrunkSpec
    match: Match
    ledger_name: str | None = None  # the ledger's name for it (its name or renamed_from)
    entry: TrunkEntry | None = None
    sid: str | None = None  # the live trunk it is: the ledger's, or the one adopted
    blocker: str | None = None  # RENAME_TAKEN, NAME_TAKEN: the SID already holding the name
    stale: TrunkEntry | None = None  # ADOPT: the ledger's entry of the name, gone from Exotel

    @property
    def renaming(self) -> bool:
        return self.match in (Match.RENAMED, Match.RENAME_TAKEN)


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]
    undeclared: Mapping[str, TrunkEntry]  # ledger name -> entry that no declared trunk claims
    unmanaged: Mapping[str, str]  # live name -> SID of listed trunks nobody owns (full only)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def sids(self) -> dict[str, str]:
        """Declared name -> the SID it dials now (paired trunks only)."""
        return {pair.spec.name: pair.sid for pair in self.pairs if pair.sid is not None}


def pair(
    desired: Sequence[TrunkSpec], ledger: Ledger, listed: Mapping[str, str] | None = None
) -> Pairing:
    """``listed``: name -> SID of every live trunk, when the profile can list them."""
    owned = ledger.by_sid()  # SID -> ledger name
    pairs = [_one(spec, ledger, owned, listed) for spec in desired]
    claimed = {p.ledger_name for p in pairs if p.entry is not None or p.stale is not None}
    undeclared = {
        name: entry for name, entry in sorted(ledger.trunks.items()) if name not in claimed
    }
    adopted = {p.sid for p in pairs if p.match is Match.ADOPT}
    unmanaged = {
        name: sid
        for name, sid in sorted((listed or {}).items())
        if sid not in owned and sid not in adopted
    }
    return Pairing(tuple(pairs), undeclared, unmanaged)


def _one(
    spec: TrunkSpec,
    ledger: Ledger,
    owned: Mapping[str, str],
    listed: Mapping[str, str] | None,
) -> Pair:
    live_sid = (listed or {}).get(spec.name)
    entry = ledger.trunks.get(spec.name)
    if entry is not None:
        gone = listed is not None and entry.sid not in set(listed.values())
        if gone and live_sid is not None and live_sid not in owned:
            return Pair(spec, Match.ADOPT, spec.name, sid=live_sid, stale=entry)
        return Pair(spec, Match.MANAGED, spec.name, entry, entry.sid)
    old = spec.renamed_from
    entry = ledger.trunks.get(old) if old is not None else None
    if entry is not None:
        if live_sid is not None and live_sid != entry.sid:
            return Pair(spec, Match.RENAME_TAKEN, old, entry, entry.sid, blocker=live_sid)
        return Pair(spec, Match.RENAMED, old, entry, entry.sid)
    if live_sid is not None:
        if live_sid in owned:  # the ledger's trunk of another name holds this name now
            return Pair(spec, Match.NAME_TAKEN, blocker=live_sid)
        return Pair(spec, Match.ADOPT, sid=live_sid)
    if spec.name in ledger.pending:
        return Pair(spec, Match.PENDING)
    return Pair(spec, Match.NEW)
