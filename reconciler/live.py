"""Client + ledger -> live state, in the manifests' canonical form.

Called by the CLI (``plan``, and later ``apply`` and ``drift``) once per account. Reads
only what the plan needs, each collection with exactly one paginated GET, every trunk
concurrently (the client's gate keeps the account within Exotel's limits):

* profile ``full`` with ``--refresh all``: the trunk list first, to find declared trunks
  missing from the ledger (adopted by name, not created twice) and live trunks nobody
  declared (reported as unmanaged, never touched); then DIDs, whitelisted IPs,
  destinations, credentials and settings of every trunk the plan is about;
* profile ``minimal``: no trunk list and no settings (the API lacks them there); a
  ledger trunk whose first child list answers 404 is gone;
* ``--refresh changed``: only trunks whose desired state differs from the fingerprint
  the ledger kept at the last apply, plus new and removed ones; no trunk list.

A ledger trunk that Exotel no longer has is reported in ``missing`` (the plan recreates
it, labelled drift), never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler import canonical
from reconciler.client import ExotelClient
from reconciler.errors import ApiError, NotFound
from reconciler.ledger import Ledger, fingerprint
from reconciler.models import TrunkSpec
from reconciler.state import AccountState, LiveCredential, LiveDestination, LiveNumber, LiveTrunk

COLLECTIONS_MINIMAL = ("phone-numbers", "whitelisted-ips", "destination-uris", "credentials")
COLLECTIONS_FULL = (*COLLECTIONS_MINIMAL, "settings")
ALIAS_SETTING = "trunk_external_alias"


def _tolerant(convert: Any, value: Any) -> str:
    """The canonical form when the API's value has one; else the value as it came."""
    try:
        return str(convert(value))
    except (TypeError, ValueError):
        return str(value).lower()


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def live_trunk(
    sid: str, listed: Mapping[str, Any] | None, children: Mapping[str, list[dict[str, Any]]]
) -> LiveTrunk:
    """One trunk from the API's answers, canonical like the manifests."""
    numbers = {
        _tolerant(canonical.e164, item.get("phone_number")): LiveNumber(
            str(item.get("id")), _tolerant(canonical.mode, item.get("mode"))
        )
        for item in children.get("phone-numbers", [])
    }
    ips = {
        canonical.ip_key(str(item.get("ip")), int(item.get("mask") or 32)): str(item.get("id"))
        for item in children.get("whitelisted-ips", [])
    }
    destinations = {
        _tolerant(canonical.destination, item.get("destination")): LiveDestination(
            str(item.get("id")), _int(item.get("priority"), 0), _int(item.get("weight"), 1)
        )
        for item in children.get("destination-uris", [])
    }
    credentials = {
        str(item.get("user_name")): LiveCredential(str(item.get("id")), item.get("friendly_name"))
        for item in children.get("credentials", [])
    }
    settings_read = "settings" in children
    alias = next(
        (
            _tolerant(canonical.e164, item.get("value"))
            for item in children.get("settings", [])
            if item.get("name") == ALIAS_SETTING
        ),
        None,
    )
    return LiveTrunk(
        sid=sid,
        name=listed.get("trunk_name") if listed else None,
        nso_code=listed.get("nso_code") if listed else None,
        domain_name=str(listed.get("domain_name", "")).lower() if listed else None,
        numbers=numbers,
        ips=ips,
        destinations=destinations,
        credentials=credentials,
        alias=alias,
        alias_read=settings_read,
    )


async def _read_trunk(
    client: ExotelClient,
    sid: str,
    listed: Mapping[str, Any] | None,
    collections: Sequence[str],
    *,
    tolerant: bool,
) -> LiveTrunk | ApiError | None:
    """A trunk with its children; None when Exotel no longer has it; with ``tolerant``,
    the error that kept it from being read (the others are still worth reporting)."""
    try:
        answers = await asyncio.gather(*(client.children(sid, c) for c in collections))
    except NotFound:
        return None
    except ApiError as error:
        if not tolerant:
            raise
        return error
    return live_trunk(sid, listed, dict(zip(collections, answers, strict=True)))


async def read(
    client: ExotelClient,
    *,
    ledger: Ledger,
    desired: Sequence[TrunkSpec],
    profile: str,
    refresh: str = "all",
    only: frozenset[str] | None = None,
    tolerant: bool = False,
) -> AccountState:
    """Live state of the account; ``only``: read just these trunks (by name), as apply
    does to verify what it touched."""
    calls_before = client.calls
    full = profile == "full"
    collections = COLLECTIONS_FULL if full else COLLECTIONS_MINIMAL
    declared = {spec.name: spec for spec in desired}
    renamed = {spec.renamed_from: spec for spec in desired if spec.renamed_from}

    wanted: dict[str, str] = {}  # SID -> ledger name: the trunks to read
    not_refreshed: set[str] = set()
    for name, entry in ledger.trunks.items():
        spec = declared.get(name) or renamed.get(name)
        unchanged = spec is not None and entry.fingerprint == fingerprint(spec)
        skipped_by_refresh = refresh == "changed" and unchanged and spec is not None
        if (skipped_by_refresh and spec is not None and spec.name == name) or (
            only is not None and name not in only
        ):
            not_refreshed.add(name)
        else:
            wanted[entry.sid] = name

    listed: dict[str, dict[str, Any]] | None = None
    names: dict[str, str] | None = None
    if full and refresh == "all" and only is None:
        listed = {str(item["trunk_sid"]): item for item in await client.list_trunks()}
        names = {str(item.get("trunk_name")): sid for sid, item in listed.items()}
        for spec in desired:  # adoption: declared, not in the ledger, but live by name
            known = spec.name in ledger.trunks or (spec.renamed_from in ledger.trunks)
            if not known and spec.name in names:
                wanted[names[spec.name]] = spec.name

    missing: set[str] = set()
    to_read = []
    for sid in wanted:
        if listed is not None and sid not in listed:
            missing.add(sid)
        else:
            to_read.append(sid)
    results = await asyncio.gather(
        *(
            _read_trunk(
                client, sid, listed.get(sid) if listed else None, collections, tolerant=tolerant
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
        unreadable=unreadable,
        calls=client.calls - calls_before,
    )


async def did_holders(client: ExotelClient, numbers: Sequence[str]) -> dict[str, str]:
    """Which trunk holds each of these DIDs now (trunk-maps, profile full): DID -> SID."""
    answers = await asyncio.gather(*(client.trunk_map(number) for number in numbers))
    return {
        number: str(answer["trunk_sid"])
        for number, answer in zip(numbers, answers, strict=True)
        if answer is not None
    }
