"""One handler per operation: what apply sends to Exotel, and what it records in the ledger.

The base of ``Executor``, which schedules them. ``HANDLERS`` maps every operation apply
performs to its handler; a test checks that every ``Operation`` that is not manual-only
has one. Handlers raise ``ApiError`` on failure (the executor records it), let the
ledger's ``StateWriteError`` through (the executor then starts no other action), and make
each write safe to repeat:

* the ledger is saved as soon as a trunk is created, deleted, replaced or renamed, and
  whenever a value only the ledger holds changes (the alias, password versions);
* a duplicate answer to a create means the thing exists: it is read back and counted
  done; a create whose answer was lost (timeout, dropped connection) is checked before
  it is retried (a trunk by name in profile ``full``; in ``minimal`` it is recorded as a
  pending create, with instructions to import it, never created twice).

Never logs a secret: passwords go from ``passwords`` straight into the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from reconciler.apply.partners import PartnerHandlers
from reconciler.errors import ApiError, Duplicate, NotFound, ServerError, TransportError
from reconciler.exotel.client import ExotelClient, answered_alias
from reconciler.exotel.records import LiveNumber
from reconciler.live import password_check
from reconciler.live.ledger import Recorder
from reconciler.live.state import TrunkEntry
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import AccountPlan, Action, Operation

CREATE_ATTEMPTS = 3  # a create is sent again after a read-back found nothing, this often
Passwords = Mapping[tuple[str, str], str]  # (trunk, username) -> the password to set
T = TypeVar("T")


def expect(what: str, asked: object, answered: object) -> None:
    """Patch and check (as kopf does): a write's answer must say what was asked."""
    if asked != answered:
        # A failure: the trunk is read again after the apply, and the next plan redoes it.
        raise ApiError(f"Exotel answered {what} {answered!r} where {asked!r} was asked")


class Handlers:
    def __init__(
        self,
        *,
        plan: AccountPlan,
        client: ExotelClient,
        recorder: Recorder,
        desired: Mapping[str, TrunkSpec],
        passwords: Passwords,
        partner: PartnerHandlers | None = None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.recorder = recorder
        self.desired = desired
        self.passwords = passwords
        self.full = plan.profile == "full"
        self.sids = {name: entry.sid for name, entry in recorder.ledger.trunks.items()}
        self.partner = partner or PartnerHandlers(
            recorder=recorder, ends={}, clients={}, passwords=passwords
        )

    # -- the ledger ----------------------------------------------------------------------

    async def record(self, trunk: str, entry: TrunkEntry | None) -> None:
        self.recorder.update(self.recorder.ledger.with_trunk(trunk, entry))
        await self.recorder.save()

    def entry(self, trunk: str) -> TrunkEntry:
        entry = self.recorder.ledger.trunks.get(trunk)
        if entry is None:  # an action on a trunk the ledger lost track of: start afresh
            entry = TrunkEntry(self.sids[trunk])
        return entry

    def sid(self, action: Action) -> str:
        return self.sids.get(action.trunk) or action.target["trunk_sid"]

    # -- trunks --------------------------------------------------------------------------

    async def create_trunk(self, action: Action) -> None:
        spec = self.desired[action.trunk]
        domain = str(spec.domain_name)
        try:
            created = await self.client.create_trunk(spec.name, spec.nso_code, domain)
            expect("trunk_name", spec.name, created.name)
            sid = created.sid
        except (Duplicate, TransportError, ServerError) as error:
            if isinstance(error, TransportError) and not error.maybe_committed:
                raise
            sid = await self._find_trunk(spec, error)
        self.sids[spec.name] = sid
        await self.record(spec.name, TrunkEntry(sid, protect=spec.protect))

    async def _find_trunk(self, spec: TrunkSpec, error: ApiError) -> str:
        """After a create with a lost answer or a duplicate name: is the trunk there?"""
        if not self.full:
            if isinstance(error, TransportError | ServerError):
                ledger = self.recorder.ledger
                pending = tuple(sorted({*ledger.pending, spec.name}))
                self.recorder.update(replace(ledger, pending=pending))
                await self.recorder.save()
                raise TransportError(
                    f"the answer to creating trunk {spec.name} was lost and profile minimal "
                    "cannot list trunks to check: find its SID in the Exotel dashboard and run "
                    f"reconciler import --account {self.plan.account} --trunk-sid "
                    f"SID={spec.name}",
                    error.call,
                    maybe_committed=True,
                ) from error
            raise error
        owned = set(self.sids.values())
        for trunk in await self.client.list_trunks():
            if trunk.name == spec.name and trunk.sid not in owned:
                return trunk.sid
        if not isinstance(error, Duplicate):  # it did not land: now a create is safe
            created = await self.client.create_trunk(
                spec.name, spec.nso_code, str(spec.domain_name)
            )
            return created.sid
        raise error

    async def adopt_trunk(self, action: Action) -> None:
        sid = action.target["trunk_sid"]
        self.sids[action.trunk] = sid
        await self.record(action.trunk, TrunkEntry(sid, protect=self.desired[action.trunk].protect))

    async def rename_trunk(self, action: Action) -> None:
        sid = action.target["trunk_sid"]
        renamed = await self.client.rename_trunk(sid, action.trunk)
        expect("trunk_name", action.trunk, renamed.name)
        ledger = self.recorder.ledger
        old = ledger.by_sid().get(sid)
        if old and old != action.trunk:  # its LiveKit objects go with it
            self.recorder.update(ledger.with_trunk_renamed(old, action.trunk))
        elif not old:
            self.recorder.update(ledger.with_trunk(action.trunk, TrunkEntry(sid)))
        await self.recorder.save()
        self.sids[action.trunk] = sid

    async def delete_trunk(self, action: Action) -> None:
        with contextlib.suppress(NotFound):  # already gone: forgetting it is all that is left
            await self.client.delete_trunk(action.target["trunk_sid"])
        await self.record(action.trunk, None)

    async def replace_trunk(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_trunk(action.target["trunk_sid"])
        # The old SID stays in the ledger until the new one is known: a crash in between
        # leaves a ledger trunk Exotel no longer has, which the next plan recreates.
        self.sids.pop(action.trunk, None)
        await self.create_trunk(action)

    # -- children ------------------------------------------------------------------------

    async def _create(
        self,
        create: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
    ) -> tuple[T, bool]:
        """Create a child: (the child, whether this call made it). A duplicate, a lost
        answer or a 5xx (which may or may not have landed) is settled by reading the
        collection back before anything is sent again, up to ``CREATE_ATTEMPTS`` times."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return await create(), True
            except (Duplicate, TransportError, ServerError) as error:
                if isinstance(error, TransportError) and not error.maybe_committed:
                    raise
                found = await find()
                if found is not None:
                    return found, False
                if isinstance(error, Duplicate) or attempt == CREATE_ATTEMPTS:
                    raise  # a duplicate we cannot see is held elsewhere
        raise AssertionError("unreachable")  # pragma: no cover

    async def map_number(self, action: Action) -> None:
        sid, number = self.sid(action), action.key
        mode = str((action.after or {}).get("mode", "pstn"))

        async def find() -> LiveNumber | None:
            return (await self.client.numbers(sid)).get(number)

        try:
            found, made = await self._create(
                lambda: self.client.map_number(sid, number, mode), find
            )
        except Duplicate as error:
            raise await self._held_elsewhere(number, error) from None
        if not made and found.mode != mode:
            found = await self.client.set_mode(sid, found.id, number, mode)
        expect(f"mode of {number}", mode, found.mode)

    async def _held_elsewhere(self, number: str, error: Duplicate) -> ApiError:
        """A DID another trunk holds: ask which one now (the plan did not, to save a call
        per new DID), so the failure says where to unmap it."""
        if not self.full:
            return error
        holder = await self.client.holder(number)
        if holder is None:
            return error
        name = self.recorder.ledger.by_sid().get(holder)
        owner = f"trunk {name} ({holder})" if name else f"unmanaged trunk {holder}"
        mine = self._trunk_of(number)
        return Duplicate(
            f"DID {number} is mapped on {owner}, which the manifests do not map it on: unmap "
            f"it there (in the Exotel dashboard), or remove it from trunk {mine}'s manifest, "
            "then apply again",
            error.call,
        )

    def _trunk_of(self, number: str) -> str:
        """The declared trunk that maps this DID."""
        return next(
            (
                name
                for name, spec in self.desired.items()
                if any(n.number == number for n in spec.phone_numbers)
            ),
            "this",
        )

    async def set_mode(self, action: Action) -> None:
        mode = str((action.after or {}).get("mode"))
        found = await self.client.set_mode(self.sid(action), action.target["id"], action.key, mode)
        expect(f"mode of {action.key}", mode, found.mode)

    async def unmap_number(self, action: Action) -> None:
        with contextlib.suppress(NotFound):  # already gone
            await self.client.unmap_number(self.sid(action), action.target["id"])

    async def add_ip(self, action: Action) -> None:
        sid, key = self.sid(action), action.key

        async def find() -> tuple[str, str] | None:
            found = (await self.client.ips(sid)).get(key)
            return (key, found) if found is not None else None

        (answered, _), _ = await self._create(lambda: self.client.add_ip(sid, key), find)
        expect("whitelisted IP", key, answered)

    async def delete_ip(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_ip(self.sid(action), action.target["id"])

    async def update_destination(self, action: Action) -> None:
        after = action.after or {}
        asked = (int(after.get("priority", 0)), int(after.get("weight", 1)))
        found = await self.client.update_destination(
            self.sid(action), action.target["id"], priority=asked[0], weight=asked[1]
        )
        expect(f"priority and weight of {action.key}", asked, (found.priority, found.weight))

    async def delete_destination(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_destination(self.sid(action), action.target["id"])

    async def set_alias(self, action: Action) -> None:
        alias = str((action.after or {}).get("alias"))
        result = await self.client.set_alias(self.sid(action), alias)
        if not result.ok:
            raise result.error or ApiError("alias refused")
        expect("trunk_external_alias", alias, answered_alias(result.data))
        await self.record(action.trunk, replace(self.entry(action.trunk), alias=alias))

    async def delete_alias(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_alias(self.sid(action))
        await self.record(action.trunk, replace(self.entry(action.trunk), alias=None))

    # -- credentials ---------------------------------------------------------------------

    async def _remember_version(self, action: Action) -> None:
        """The version set, and a check of the value (never the value: password_check)."""
        check = None
        if action.after is not None:  # slow on purpose: off the event loop, before reading
            secret = self.passwords[(action.trunk, action.key)]
            check = await asyncio.to_thread(password_check.make, secret)
        entry = self.entry(action.trunk)
        versions, checks = {**entry.credentials}, {**entry.checks}
        if action.after is None or check is None:
            versions.pop(action.key, None)
            checks.pop(action.key, None)
        else:
            versions[action.key] = int(action.after["password_version"])
            checks[action.key] = check
        await self.record(action.trunk, replace(entry, credentials=versions, checks=checks))

    def _friendly(self, action: Action) -> str | None:
        name = (action.after or {}).get("friendly_name")
        return str(name) if name else None

    async def _add_credential(self, action: Action) -> str:
        """The credential's id, created now or found already there."""
        sid, username = self.sid(action), action.key
        secret, friendly = self.passwords[(action.trunk, username)], self._friendly(action)

        async def find() -> str | None:
            found = (await self.client.credentials(sid)).get(username)
            return found.id if found else None

        async def create() -> str:
            answered, found = await self.client.add_credential(sid, username, secret, friendly)
            expect("user_name", username, answered)
            expect(f"friendly_name of {username}", friendly, found.friendly_name or None)
            return found.id

        credential_id, made = await self._create(create, find)
        if not made:  # it was there already, with a password we cannot read: set ours
            await self._set_password(action, credential_id)
        return credential_id

    async def _set_password(self, action: Action, credential_id: str) -> None:
        """In place with profile full; by deleting and re-creating with minimal."""
        sid, username = self.sid(action), action.key
        secret, friendly = self.passwords[(action.trunk, username)], self._friendly(action)
        if self.full:
            await self.client.update_credential(sid, credential_id, secret, friendly)
        else:
            await self.client.delete_credential(sid, credential_id)
            await self.client.add_credential(sid, username, secret, friendly)

    async def add_credential(self, action: Action) -> None:
        await self._add_credential(action)
        await self._remember_version(action)

    async def update_credential(self, action: Action) -> None:
        secret = self.passwords[(action.trunk, action.key)]
        await self.client.update_credential(
            self.sid(action), action.target["id"], secret, self._friendly(action)
        )
        await self._remember_version(action)

    async def replace_credential(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_credential(self.sid(action), action.target["id"])
        await self._add_credential(action)
        await self._remember_version(action)

    async def delete_credential(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_credential(self.sid(action), action.target["id"])
        await self._remember_version(action)

    async def record_protect(self, action: Action) -> None:
        protect = bool((action.after or {}).get("protect"))
        await self.record(action.trunk, replace(self.entry(action.trunk), protect=protect))

    # -- routes --------------------------------------------------------------------------

    async def record_route(self, action: Action) -> None:
        """Routes are served by ``reconciler serve``: apply records what it deployed."""
        route = (action.after or {}).get("route")
        self.recorder.update(
            self.recorder.ledger.with_route(
                action.key, action.target.get("fingerprint"), route if route else None
            )
        )
        await self.recorder.save()


Handler = Callable[[Handlers, Action], Awaitable[None]]
# Destinations are not here: the executor sends all of a trunk's new ones in one request.
HANDLERS: dict[Operation, Handler] = {
    Operation.CREATE_TRUNK: Handlers.create_trunk,
    Operation.ADOPT_TRUNK: Handlers.adopt_trunk,
    Operation.RENAME_TRUNK: Handlers.rename_trunk,
    Operation.REPLACE_TRUNK: Handlers.replace_trunk,
    Operation.DELETE_TRUNK: Handlers.delete_trunk,
    Operation.MAP_NUMBER: Handlers.map_number,
    Operation.SET_MODE: Handlers.set_mode,
    Operation.UNMAP_NUMBER: Handlers.unmap_number,
    Operation.ADD_IP: Handlers.add_ip,
    Operation.DELETE_IP: Handlers.delete_ip,
    Operation.UPDATE_DESTINATION: Handlers.update_destination,
    Operation.DELETE_DESTINATION: Handlers.delete_destination,
    Operation.SET_ALIAS: Handlers.set_alias,
    Operation.DELETE_ALIAS: Handlers.delete_alias,
    Operation.ADD_CREDENTIAL: Handlers.add_credential,
    Operation.UPDATE_CREDENTIAL: Handlers.update_credential,
    Operation.REPLACE_CREDENTIAL: Handlers.replace_credential,
    Operation.DELETE_CREDENTIAL: Handlers.delete_credential,
    Operation.RECORD_ROUTE: Handlers.record_route,
    Operation.RECORD_PROTECT: Handlers.record_protect,
    Operation.LIVEKIT_CREATE: lambda handlers, action: handlers.partner.create(action),
    Operation.LIVEKIT_UPDATE: lambda handlers, action: handlers.partner.update(action),
    Operation.LIVEKIT_ADOPT: lambda handlers, action: handlers.partner.update(action),
    Operation.LIVEKIT_DELETE: lambda handlers, action: handlers.partner.delete(action),
}
BATCHED = frozenset({Operation.ADD_DESTINATION})  # sent per trunk by the executor
