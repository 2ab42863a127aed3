"""Client + ledger -> live state, in the manifests' canonical form.

Called by the pipeline once per account (``plan``, ``drift``, ``apply`` before it acts
and again to verify what it touched). Reads only what the plan needs, each collection
with one paginated GET, every trunk concurrently (the client's gate keeps the account
within Exotel's limits). Which trunks those are is ``pairing``'s answer:

* profile ``full`` with ``--refresh all``: the trunk list first, so that a declared trunk
  missing from the ledger is adopted by name (never created twice), a name already taken
  is seen before apply fails on it, and live trunks nobody declared are reported as
  unmanaged (never touched); then every paired and every undeclared ledger trunk;
* profile ``minimal``: no trunk list and no settings (the API lacks them there); a
  ledger trunk whose first child list answers 404 is gone;
* ``--refresh changed``: only trunks whose desired state differs from the fingerprint
  the ledger kept at the last apply, plus new and removed ones, and the trunk list in
  profile ``full`` (adoption, names taken); the names read are the plan's ``scope``, which
  apply re-reads, exactly, for a saved plan (docs/architecture.md, "Scoped plans").

A ledger trunk that Exotel no longer has is reported in ``missing`` (the plan recreates
it, labelled drift), never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reconciler.errors import ApiError, NotFound
from reconciler.exotel.client import ExotelClient
from reconciler.exotel.records import ListedTrunk, LiveTrunk
from reconciler.live.pairing import Pairing, pair
from reconciler.live.state import AccountState, Ledger, fingerprint
from reconciler.manifests.models import TrunkSpec


async def _read_trunk(
    client: ExotelClient, sid: str, listed: ListedTrunk | None, *, settings: bool, tolerant: bool
) -> LiveTrunk | ApiError | None:
    """A trunk with its children; None when Exotel no longer has it; with ``tolerant``,
    the error that kept it from being read (the others are still worth reporting)."""
    try:
        return await client.read_trunk(sid, listed, settings=settings)
    except NotFound:
        return None
    except ApiError as error:
        if not tolerant:
            raise
        return error


def _wanted(
    pairing: Pairing, *, refresh: str, only: frozenset[str] | None
) -> tuple[dict[str, str], set[str]]:
    """SID -> name of the trunks to read, and the ledger names skipped. With ``refresh``
    changed, ``only`` adds to what changed (a saved plan's scope); with all, it restricts."""
    wanted: dict[str, str] = {}
    skipped: set[str] = set()
    for found in pairing:
        if found.sid is None:
            continue
        entry = found.entry
        unchanged = entry is not None and entry.fingerprint == fingerprint(found.spec)
        named = only is not None and found.spec.name in only
        if refresh == "changed":
            skip = unchanged and not found.renaming and not named
        else:
            skip = only is not None and not named
        if skip:
            skipped.add(found.ledger_name or found.spec.name)
        else:
            wanted[found.sid] = found.spec.name
    for name, entry in pairing.undeclared.items():
        if refresh != "changed" and only is not None and name not in only:
            skipped.add(name)
        else:
            wanted[entry.sid] = name
    return wanted, skipped


async def read(
    client: ExotelClient,
    *,
    ledger: Ledger,
    desired: Sequence[TrunkSpec],
    profile: str,
    refresh: str = "all",
    only: frozenset[str] | None = None,
    listing: bool | None = None,
    tolerant: bool = False,
) -> AccountState:
    """Live state of the account. ``only``: read just these trunks (declared names, or
    ledger names of undeclared ones): a saved plan's scope, or what apply touched.
    ``listing``: read the trunk list too (profile full); by default unless ``only``."""
    calls_before = client.calls
    full = profile == "full"
    listed: dict[str, ListedTrunk] | None = None
    if full and (listing if listing is not None else only is None):
        listed = {trunk.sid: trunk for trunk in await client.list_trunks()}
    names = {trunk.name: sid for sid, trunk in listed.items()} if listed is not None else None
    pairing = pair(desired, ledger, names)
    wanted, not_refreshed = _wanted(pairing, refresh=refresh, only=only)

    missing = {sid for sid in wanted if listed is not None and sid not in listed}
    to_read = [sid for sid in wanted if sid not in missing]
    results = await asyncio.gather(
        *(
            _read_trunk(
                client,
                sid,
                listed.get(sid) if listed else None,
                settings=full,
                tolerant=tolerant,
            )
            for sid in to_read
        )
    )
    trunks = {}
    unreadable: dict[str, str] = {}
    for sid, trunk in zip(to_read, results, strict=True):
        if trunk is None:
            missing.add(sid)
        elif isinstance(trunk, ApiError):
            unreadable[sid] = str(trunk)
        else:
            trunks[sid] = trunk
    return AccountState(
        account=ledger.account,
        profile=profile,
        trunks=trunks,
        missing=frozenset(missing),
        listed=names,
        not_refreshed=frozenset(not_refreshed),
        scope=frozenset(wanted.values()) if refresh == "changed" or only is not None else None,
        unreadable=unreadable,
        calls=client.calls - calls_before,
    )


async def did_holders(client: ExotelClient, numbers: Sequence[str]) -> dict[str, str]:
    """Which trunk holds each of these DIDs now (trunk-maps, profile full): DID -> SID."""
    answers = await asyncio.gather(*(client.holder(number) for number in numbers))
    return {number: sid for number, sid in zip(numbers, answers, strict=True) if sid is not None}
