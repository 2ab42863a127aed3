"""Executes one account's plan: in dependency order, concurrent across trunks, idempotent.

Called by ``pipeline.apply`` after the plan was re-made, compared and approved. Each
trunk's actions run in plan order, trunks in parallel (the client's gate keeps the
account within Exotel's limits); an action waits for dependencies on other trunks (a
DID unmapped there before it is mapped here) and is skipped when one failed, while
independent actions go on. All new destination URIs of a trunk go in one request.

What makes it safe to stop and run again at any point:

* the ledger is saved (``Recorder``, atomic writes) as soon as a trunk is created,
  deleted, replaced or renamed, and whenever a value only the ledger holds changes (the
  alias, credential password versions); the trunk's fingerprint last, once all its
  actions succeeded;
* a duplicate answer to a create means the thing exists: it is read back and counted
  done; a create whose answer was lost (timeout, dropped connection) is checked before
  it is retried (a trunk by name in profile ``full``; in ``minimal`` it is recorded as a
  pending create, with instructions to import it, never created twice);
* every step is journaled as it happens: one JSON line per start, success, failure or
  skip, beside the ledger.

Never logs or journals a secret: passwords go from the environment to the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from reconciler.actions import AccountPlan, Action, Outcome
from reconciler.client import ExotelClient
from reconciler.diff import parts
from reconciler.errors import ApiError, Duplicate, NotFound, TransportError
from reconciler.journal import Journal
from reconciler.ledger import Recorder
from reconciler.load import Secrets
from reconciler.models import TrunkSpec
from reconciler.state import TrunkEntry, fingerprint

log = structlog.get_logger("reconciler.apply")

DONE, FAILED, SKIPPED, MANUAL = "done", "failed", "skipped", "manual"
ALIAS = "trunk_external_alias"
COLLECTION = {
    "phone_number": "phone-numbers",
    "whitelisted_ip": "whitelisted-ips",
    "destination_uri": "destination-uris",
    "credential": "credentials",
}


class Executor:
    def __init__(
        self,
        *,
        plan: AccountPlan,
        client: ExotelClient,
        recorder: Recorder,
        journal: Journal,
        desired: Mapping[str, TrunkSpec],
        secrets: Secrets,
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.recorder = recorder
        self.journal = journal
        self.desired = desired
        self.secrets = secrets
        self.on_outcome = on_outcome
        self.full = plan.profile == "full"
        self.sids = {name: entry.sid for name, entry in recorder.ledger.trunks.items()}
        self.outcomes: dict[str, Outcome] = {}
        self.finished = {action.address: asyncio.Event() for action in plan.actions}

    # -- scheduling ----------------------------------------------------------------------

    async def run(self) -> list[Outcome]:
        groups: dict[str, list[Action]] = {}
        for action in self.plan.actions:
            groups.setdefault(action.trunk, []).append(action)
        await asyncio.gather(*(self._trunk(trunk, actions) for trunk, actions in groups.items()))
        return [self.outcomes[action.address] for action in self.plan.actions]

    async def _trunk(self, trunk: str, actions: Sequence[Action]) -> None:
        batched: set[str] = set()
        for action in actions:
            if action.address in batched:
                continue
            blocked = await self._blocked_by(action)
            if blocked:
                self._finish(action, SKIPPED, f"skipped: {blocked} did not succeed")
                continue
            if action.operation == "add_destination":
                group = [a for a in actions if a.operation == "add_destination"]
                group = [a for a in group if a is action or not await self._blocked_by(a)]
                batched.update(a.address for a in group)
                await self._destinations(group)
                continue
            await self._one(action)
        await self._settle_fingerprint(trunk, actions)

    async def _blocked_by(self, action: Action) -> str:
        for needed in action.depends_on:
            if needed in self.finished:
                await self.finished[needed].wait()
                if self.outcomes[needed].status != DONE:
                    return needed
        return ""

    def _finish(self, action: Action, status: str, detail: str = "") -> None:
        outcome = Outcome(action, status, detail)
        self.outcomes[action.address] = outcome
        self.journal.record(action, status if status != DONE else "succeeded", detail)
        self.finished[action.address].set()
        self.on_outcome(outcome)

    async def _one(self, action: Action) -> None:
        if action.operation == "manual":
            self._finish(action, MANUAL, action.reason)
            return
        self.journal.record(action, "started")
        try:
            await getattr(self, f"_{action.operation}")(action)
        except ApiError as error:
            log.warning("apply.failed", address=action.address, error=str(error))
            self._finish(action, FAILED, str(error))
        else:
            self._finish(action, DONE)

    # -- the ledger ----------------------------------------------------------------------

    async def _record(self, trunk: str, entry: TrunkEntry | None) -> None:
        self.recorder.update(self.recorder.ledger.with_trunk(trunk, entry))
        await self.recorder.save()

    def _entry(self, trunk: str) -> TrunkEntry:
        entry = self.recorder.ledger.trunks.get(trunk)
        if entry is None:  # an action on a trunk the ledger lost track of: start afresh
            entry = TrunkEntry(self.sids[trunk])
        return entry

    async def _settle_fingerprint(self, trunk: str, actions: Sequence[Action]) -> None:
        spec = self.desired.get(trunk)
        entry = self.recorder.ledger.trunks.get(trunk)
        if spec is None or entry is None:
            return
        if all(self.outcomes[a.address].status == DONE for a in actions):
            await self._record(
                trunk,
                replace(
                    entry, fingerprint=fingerprint(spec), parts=parts(spec), protect=spec.protect
                ),
            )

    def _sid(self, action: Action) -> str:
        return self.sids.get(action.trunk) or action.target["trunk_sid"]

    # -- trunks --------------------------------------------------------------------------

    async def _create_trunk(self, action: Action) -> None:
        spec = self.desired[action.trunk]
        domain = str(spec.domain_name)
        try:
            created = await self.client.create_trunk(spec.name, spec.nso_code, domain)
            sid = str(created["trunk_sid"])
        except (Duplicate, TransportError) as error:
            if isinstance(error, TransportError) and not error.maybe_committed:
                raise
            sid = await self._find_trunk(spec.name, error)
        self.sids[spec.name] = sid
        await self._record(spec.name, TrunkEntry(sid, protect=spec.protect))

    async def _find_trunk(self, name: str, error: ApiError) -> str:
        """After a create with a lost answer or a duplicate name: is the trunk there?"""
        if not self.full:
            if isinstance(error, TransportError):
                ledger = self.recorder.ledger
                pending = tuple(sorted({*ledger.pending, name}))
                self.recorder.update(replace(ledger, pending=pending))
                await self.recorder.save()
                raise TransportError(
                    f"the answer to creating trunk {name} was lost and profile minimal cannot "
                    "list trunks to check: find its SID in the Exotel dashboard and run "
                    f"reconciler import --account {self.plan.account} --trunk-sid SID",
                    error.call,
                    maybe_committed=True,
                ) from error
            raise error
        for trunk in await self.client.list_trunks():
            if (
                trunk.get("trunk_name") == name
                and str(trunk["trunk_sid"]) not in self.sids.values()
            ):
                return str(trunk["trunk_sid"])
        if isinstance(error, TransportError):  # it did not land: now a create is safe
            created = await self.client.create_trunk(
                name, "ANY-ANY", str(self.desired[name].domain_name)
            )
            return str(created["trunk_sid"])
        raise error

    async def _adopt_trunk(self, action: Action) -> None:
        sid = action.target["trunk_sid"]
        self.sids[action.trunk] = sid
        await self._record(
            action.trunk, TrunkEntry(sid, protect=self.desired[action.trunk].protect)
        )

    async def _rename_trunk(self, action: Action) -> None:
        sid = action.target["trunk_sid"]
        await self.client.update_trunk(sid, trunk_name=action.trunk)
        ledger = self.recorder.ledger
        old = ledger.by_sid().get(sid)
        entry = ledger.trunks[old] if old else TrunkEntry(sid)
        if old and old != action.trunk:
            ledger = ledger.with_trunk(old, None)
        self.recorder.update(ledger.with_trunk(action.trunk, entry))
        await self.recorder.save()
        self.sids[action.trunk] = sid

    async def _delete_trunk(self, action: Action) -> None:
        with contextlib.suppress(NotFound):  # already gone: forgetting it is all that is left
            await self.client.delete_trunk(action.target["trunk_sid"])
        await self._record(action.trunk, None)

    async def _replace_trunk(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_trunk(action.target["trunk_sid"])
        # The old SID stays in the ledger until the new one is known: a crash in between
        # leaves a ledger trunk Exotel no longer has, which the next plan recreates.
        self.sids.pop(action.trunk, None)
        await self._create_trunk(action)

    # -- children ------------------------------------------------------------------------

    async def _create_child(
        self, action: Action, body: dict[str, Any], present: Callable[[dict[str, Any]], bool]
    ) -> tuple[dict[str, Any], bool]:
        """POST a child: (the child, whether this call made it). A duplicate or a lost
        answer is settled by reading the collection back before anything is retried."""
        sid, collection = self._sid(action), COLLECTION[str(action.resource)]
        try:
            return await self.client.add_child(sid, collection, body), True
        except (Duplicate, TransportError) as error:
            if isinstance(error, TransportError) and not error.maybe_committed:
                raise
            listed = await self.client.children(sid, collection)
            found = next((item for item in listed if present(item)), None)
            if found is not None:
                return found, False
            if isinstance(error, Duplicate):  # a duplicate we cannot see: held elsewhere
                raise
            return await self.client.add_child(sid, collection, body), True

    async def _map_number(self, action: Action) -> None:
        mode = str((action.after or {}).get("mode", "pstn"))
        body = {"phone_number": action.key, "mode": mode}
        found, made = await self._create_child(
            action, body, lambda item: item.get("phone_number") == action.key
        )
        if not made and (found.get("mode") or "pstn") != mode:
            await self.client.update_child(
                self._sid(action), "phone-numbers", str(found["id"]), body
            )

    async def _set_mode(self, action: Action) -> None:
        body = {"phone_number": action.key, "mode": (action.after or {}).get("mode")}
        await self.client.update_child(
            self._sid(action), "phone-numbers", action.target["id"], body
        )

    async def _unmap_number(self, action: Action) -> None:
        await self._delete_child(action)

    async def _add_ip(self, action: Action) -> None:
        address, mask = action.key.split("/")
        body = {"ip": address, "mask": int(mask)}
        await self._create_child(
            action, body, lambda item: item.get("ip") == address and item.get("mask") == int(mask)
        )

    async def _delete_ip(self, action: Action) -> None:
        await self._delete_child(action)

    async def _destinations(self, actions: Sequence[Action]) -> None:
        """Every new destination of a trunk in one request; per-item answers settle each."""
        for action in actions:
            self.journal.record(action, "started")
        items = [
            {
                "destination": a.key,
                "priority": (a.after or {}).get("priority", 0),
                "weight": (a.after or {}).get("weight", 1),
            }
            for a in actions
        ]
        sid = self._sid(actions[0])
        try:
            results = await self.client.add_batch(sid, "destination-uris", {"destinations": items})
        except TransportError as error:
            if not error.maybe_committed:
                for action in actions:
                    self._finish(action, FAILED, str(error))
                return
            for action in actions:  # the answer was lost: settle each against what is there
                await self._one_destination(action)
            return
        except ApiError as error:
            for action in actions:
                self._finish(action, FAILED, str(error))
            return
        for action, result in zip(actions, results, strict=True):
            if result.ok or isinstance(result.error, Duplicate):
                self._finish(action, DONE)
            else:
                self._finish(action, FAILED, str(result.error))

    async def _one_destination(self, action: Action) -> None:
        after = action.after or {}
        item = {
            "destination": action.key,
            "priority": after.get("priority", 0),
            "weight": after.get("weight", 1),
        }

        def present(found: dict[str, Any]) -> bool:
            return str(found.get("destination", "")).lower().removeprefix("sip:") == action.key

        try:
            existing = [
                d
                for d in await self.client.children(self._sid(action), "destination-uris")
                if present(d)
            ]
            if not existing:
                results = await self.client.add_batch(
                    self._sid(action), "destination-uris", {"destinations": [item]}
                )
                if not (results[0].ok or isinstance(results[0].error, Duplicate)):
                    raise results[0].error or ApiError("destination refused")
        except ApiError as error:
            self._finish(action, FAILED, str(error))
        else:
            self._finish(action, DONE)

    async def _update_destination(self, action: Action) -> None:
        after = action.after or {}
        body = {"priority": after.get("priority"), "weight": after.get("weight")}
        await self.client.update_child(
            self._sid(action), "destination-uris", action.target["id"], body
        )

    async def _delete_destination(self, action: Action) -> None:
        await self._delete_child(action)

    async def _delete_child(self, action: Action, *, key: str = "id") -> None:
        with contextlib.suppress(NotFound):  # already gone
            collection = COLLECTION[str(action.resource)]
            await self.client.delete_child(self._sid(action), collection, action.target[key])

    async def _set_alias(self, action: Action) -> None:
        alias = str((action.after or {}).get("alias"))
        results = await self.client.add_batch(
            self._sid(action),
            "settings",
            {"settings": [{"name": ALIAS, "value": alias}]},
            idempotent=True,  # an upsert: sending it again after a lost answer is safe
        )
        if not results[0].ok:
            raise results[0].error or ApiError("alias refused")
        await self._record(action.trunk, replace(self._entry(action.trunk), alias=alias))

    async def _delete_alias(self, action: Action) -> None:
        with contextlib.suppress(NotFound):
            await self.client.delete_child(self._sid(action), "settings", ALIAS, key="name")
        await self._record(action.trunk, replace(self._entry(action.trunk), alias=None))

    def _password(self, action: Action) -> str:
        spec = self.desired[action.trunk]
        credential = next(c for c in spec.credentials if c.username == action.key)
        return self.secrets.get(credential.password)

    async def _remember_version(self, action: Action) -> None:
        entry = self._entry(action.trunk)
        versions = {**entry.credentials}
        if action.after is None:
            versions.pop(action.key, None)
        else:
            versions[action.key] = int(action.after["password_version"])
        await self._record(action.trunk, replace(entry, credentials=versions))

    async def _add_credential(self, action: Action) -> None:
        after = action.after or {}
        body = {"user_name": action.key, "password": self._password(action)}
        if after.get("friendly_name"):
            body["friendly_name"] = str(after["friendly_name"])
        found, made = await self._create_child(
            action, body, lambda item: item.get("user_name") == action.key
        )
        if not made:  # it was there already, with a password we cannot read: set ours
            await self._set_password(action, str(found["id"]), body)
        await self._remember_version(action)

    async def _set_password(self, action: Action, credential_id: str, body: dict[str, Any]) -> None:
        """In place with profile full; by deleting and re-creating with minimal."""
        sid = self._sid(action)
        if self.full:
            update = {key: value for key, value in body.items() if key != "user_name"}
            await self.client.update_child(sid, "credentials", credential_id, update)
        else:
            await self.client.delete_child(sid, "credentials", credential_id)
            await self.client.add_child(sid, "credentials", body)

    async def _update_credential(self, action: Action) -> None:
        after = action.after or {}
        body = {"password": self._password(action)}
        if after.get("friendly_name"):
            body["friendly_name"] = str(after["friendly_name"])
        await self.client.update_child(self._sid(action), "credentials", action.target["id"], body)
        await self._remember_version(action)

    async def _replace_credential(self, action: Action) -> None:
        after = action.after or {}
        body = {"user_name": action.key, "password": self._password(action)}
        if after.get("friendly_name"):
            body["friendly_name"] = str(after["friendly_name"])
        sid = self._sid(action)
        with contextlib.suppress(NotFound):
            await self.client.delete_child(sid, "credentials", action.target["id"])
        await self._create_child(action, body, lambda item: item.get("user_name") == action.key)
        await self._remember_version(action)

    async def _record_route(self, action: Action) -> None:
        """Routes are served by ``reconciler serve``: apply records what it deployed."""
        self.recorder.update(
            self.recorder.ledger.with_route(action.key, action.target.get("fingerprint"))
        )
        await self.recorder.save()

    async def _delete_credential(self, action: Action) -> None:
        await self._delete_child(action)
        await self._remember_version(action)
