"""Exotel's vSIP API for one account, as operations on records: the only place that knows
its paths, field names, body shapes and setting names.

Called by ``live.read`` (reads), ``apply`` (writes) and the importer. Each operation
takes and returns canonical values (``exotel.records``), never Exotel's JSON, so no
stage above this package spells ``phone-numbers`` or ``trunk_external_alias``. Sending,
retries, the rate gate and envelope decoding are ``Session``'s (``session.py``). Where
the sources disagree on a shape, docs/exotel-api.md says which one is implemented.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import NotFound
from reconciler.exotel.envelope import JSON, ItemResult
from reconciler.exotel.records import (
    ListedTrunk,
    LiveCredential,
    LiveDestination,
    LiveNumber,
    LiveTrunk,
)
from reconciler.exotel.session import Session
from reconciler.manifests import canonical

# The trunk's collections, as the API spells them (hyphenated; docs/exotel-api.md).
NUMBERS = "phone-numbers"
IPS = "whitelisted-ips"
DESTINATIONS = "destination-uris"
CREDENTIALS = "credentials"
SETTINGS = "settings"
ALIAS_SETTING = "trunk_external_alias"  # the caller ID setting
CHILDREN = (NUMBERS, IPS, DESTINATIONS, CREDENTIALS)  # readable in every profile


def reads_per_trunk(*, settings: bool) -> int:
    """The GETs ``read_trunk`` sends for one trunk (one page each), with or without its
    settings: what a drift budget pays per trunk."""
    return len(CHILDREN) + (1 if settings else 0)


@dataclass(frozen=True)
class NewDestination:
    uri: str  # canonical: host:port;transport=x
    priority: int = 0
    weight: int = 1


def _tolerant(convert: Callable[[Any], str], value: Any) -> str:
    """The canonical form when the API's value has one; else the value as it came."""
    try:
        return str(convert(value))
    except (TypeError, ValueError):
        return str(value).lower()


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number(item: JSON) -> tuple[str, LiveNumber]:
    key = _tolerant(canonical.e164, item.get("phone_number"))
    return key, LiveNumber(str(item.get("id")), _tolerant(canonical.mode, item.get("mode")))


def _ip(item: JSON) -> tuple[str, str]:
    return canonical.ip_key(str(item.get("ip")), int(item.get("mask") or 32)), str(item.get("id"))


def _destination(item: JSON) -> tuple[str, LiveDestination]:
    key = _tolerant(canonical.destination, item.get("destination"))
    found = LiveDestination(
        str(item.get("id")), _int(item.get("priority"), 0), _int(item.get("weight"), 1)
    )
    return key, found


def _credential(item: JSON) -> tuple[str, LiveCredential]:
    return str(item.get("user_name")), LiveCredential(
        str(item.get("id")), item.get("friendly_name")
    )


def _alias(settings: Sequence[JSON]) -> str | None:
    return next(
        (
            _tolerant(canonical.e164, item.get("value"))
            for item in settings
            if item.get("name") == ALIAS_SETTING
        ),
        None,
    )


def _listed(item: JSON) -> ListedTrunk:
    domain = item.get("domain_name")
    return ListedTrunk(
        sid=str(item["trunk_sid"]),
        name=str(item.get("trunk_name")),
        nso_code=item.get("nso_code"),
        domain_name=str(domain).lower() if domain is not None else None,
    )


def answered_destination(data: JSON | None) -> tuple[str, LiveDestination] | None:
    """A destination as a batch item's answer gives it (canonical), when it gives one."""
    return _destination(data) if isinstance(data, dict) else None


def answered_alias(data: JSON | None) -> str | None:
    return _alias([data]) if isinstance(data, dict) else None


def live_trunk(sid: str, listed: ListedTrunk | None, answers: dict[str, list[JSON]]) -> LiveTrunk:
    """One trunk from the answers to its collection reads (``settings`` when read)."""
    return LiveTrunk(
        sid=sid,
        name=listed.name if listed else None,
        nso_code=listed.nso_code if listed else None,
        domain_name=listed.domain_name if listed else None,
        numbers=dict(map(_number, answers.get(NUMBERS, []))),
        ips=dict(map(_ip, answers.get(IPS, []))),
        destinations=dict(map(_destination, answers.get(DESTINATIONS, []))),
        credentials=dict(map(_credential, answers.get(CREDENTIALS, []))),
        alias=_alias(answers.get(SETTINGS, [])),
        alias_read=SETTINGS in answers,
    )


class ExotelClient(Session):
    """Exotel's vSIP API for one account (``Session`` sends and decodes)."""

    def _trunk(self, sid: str, collection: str = "") -> str:
        return f"/trunks/{sid}/{collection}" if collection else f"/trunks/{sid}"

    # -- trunks ----------------------------------------------------------------------

    async def list_trunks(self) -> list[ListedTrunk]:
        """Profile full only: an account with the minimal API answers 404 here."""
        try:
            return [_listed(item) for item in await self.listing("/trunks")]
        except NotFound as error:
            hint = (
                f"{error.message}; this account may have only the minimal API, which cannot "
                f"list trunks: set api: minimal on account {self.account} "
                '(docs/plans.md, "Profiles")'
            )
            raise NotFound(hint, error.call) from None

    async def create_trunk(self, name: str, nso_code: str, domain_name: str) -> ListedTrunk:
        body = {"trunk_name": name, "nso_code": nso_code, "domain_name": domain_name}
        return _listed(await self.single("POST", "/trunks", body=body))

    async def rename_trunk(self, sid: str, name: str) -> ListedTrunk:
        return _listed(await self.single("PUT", self._trunk(sid), body={"trunk_name": name}))

    async def delete_trunk(self, sid: str) -> None:
        await self.single("DELETE", "/trunks", params={"trunk_sid": sid})

    async def read_trunk(
        self, sid: str, listed: ListedTrunk | None = None, *, settings: bool
    ) -> LiveTrunk:
        """The trunk with its children, one paginated GET per collection, concurrently;
        ``settings`` only where the profile can read them. NotFound when it is gone."""
        collections = (*CHILDREN, SETTINGS) if settings else CHILDREN
        answers = await asyncio.gather(*(self._children(sid, c) for c in collections))
        return live_trunk(sid, listed, dict(zip(collections, answers, strict=True)))

    async def _children(self, sid: str, collection: str) -> list[JSON]:
        return await self.listing(self._trunk(sid, collection))

    async def holder(self, number: str) -> str | None:
        """The SID of the trunk holding a DID (``trunk-maps``), or None when none does."""
        try:
            found = await self.single("GET", "/trunk-maps", params={"exophone": number})
        except NotFound:
            return None
        return str(found["trunk_sid"])

    # -- DIDs ------------------------------------------------------------------------

    async def numbers(self, sid: str) -> dict[str, LiveNumber]:
        return dict(map(_number, await self._children(sid, NUMBERS)))

    async def map_number(self, sid: str, number: str, mode: str) -> LiveNumber:
        body = {"phone_number": number, "mode": mode}
        return _number(await self.single("POST", self._trunk(sid, NUMBERS), body=body))[1]

    async def set_mode(self, sid: str, number_id: str, number: str, mode: str) -> LiveNumber:
        body = {"phone_number": number, "mode": mode}  # the API wants both
        path = self._trunk(sid, f"{NUMBERS}/{number_id}")
        return _number(await self.single("PUT", path, body=body))[1]

    async def unmap_number(self, sid: str, number_id: str) -> None:
        await self._delete(sid, NUMBERS, number_id)

    # -- whitelisted IPs -------------------------------------------------------------

    async def ips(self, sid: str) -> dict[str, str]:
        return dict(map(_ip, await self._children(sid, IPS)))

    async def add_ip(self, sid: str, key: str) -> tuple[str, str]:
        """Whitelist ``a.b.c.d/nn``: the entry as answered, (key, id)."""
        address, mask = key.split("/")
        body = {"ip": address, "mask": int(mask)}
        return _ip(await self.single("POST", self._trunk(sid, IPS), body=body))

    async def delete_ip(self, sid: str, ip_id: str) -> None:
        await self._delete(sid, IPS, ip_id)

    # -- destinations ----------------------------------------------------------------

    async def destinations(self, sid: str) -> dict[str, LiveDestination]:
        return dict(map(_destination, await self._children(sid, DESTINATIONS)))

    async def add_destinations(
        self, sid: str, destinations: Sequence[NewDestination]
    ) -> list[ItemResult]:
        """One request for all of them; one result per destination, in order."""
        items = [
            {"destination": d.uri, "priority": d.priority, "weight": d.weight} for d in destinations
        ]
        return await self.batch(self._trunk(sid, DESTINATIONS), {"destinations": items})

    async def update_destination(
        self, sid: str, destination_id: str, *, priority: int, weight: int
    ) -> LiveDestination:
        body = {"priority": priority, "weight": weight}
        path = self._trunk(sid, f"{DESTINATIONS}/{destination_id}")
        return _destination(await self.single("PUT", path, body=body))[1]

    async def delete_destination(self, sid: str, destination_id: str) -> None:
        await self._delete(sid, DESTINATIONS, destination_id)

    # -- the alias -------------------------------------------------------------------

    async def set_alias(self, sid: str, alias: str) -> ItemResult:
        body = {"settings": [{"name": ALIAS_SETTING, "value": alias}]}
        # An upsert: sending it again after a lost answer is safe.
        [result] = await self.batch(self._trunk(sid, SETTINGS), body, idempotent=True)
        return result

    async def delete_alias(self, sid: str) -> None:
        await self._delete(sid, SETTINGS, ALIAS_SETTING, key="name")

    # -- credentials -----------------------------------------------------------------

    async def credentials(self, sid: str) -> dict[str, LiveCredential]:
        return dict(map(_credential, await self._children(sid, CREDENTIALS)))

    async def add_credential(
        self, sid: str, username: str, password: str, friendly_name: str | None
    ) -> tuple[str, LiveCredential]:
        """The credential as answered: (username, record); never the password."""
        body = {"user_name": username, "password": password}
        if friendly_name:
            body["friendly_name"] = friendly_name
        return _credential(await self.single("POST", self._trunk(sid, CREDENTIALS), body=body))

    async def update_credential(
        self, sid: str, credential_id: str, password: str, friendly_name: str | None
    ) -> None:
        body = {"password": password}
        if friendly_name:
            body["friendly_name"] = friendly_name
        await self.single("PUT", self._trunk(sid, f"{CREDENTIALS}/{credential_id}"), body=body)

    async def delete_credential(self, sid: str, credential_id: str) -> None:
        await self._delete(sid, CREDENTIALS, credential_id)

    async def _delete(self, sid: str, collection: str, child: str, *, key: str = "id") -> None:
        """PUT names the child in the path, DELETE in the query (``?id=``, ``?name=``)."""
        await self.single("DELETE", self._trunk(sid, collection), params={key: child})
