"""What apply sends to a partner platform's API (LiveKit), and what it records.

Held by ``Handlers`` (``handlers.partner``) for the three LiveKit operations. Each
write's answer is compared with what was asked (as Exotel's are); the ledger records
the object's ID and the digest of the fields applied as soon as LiveKit answers; and a
create whose answer was lost is looked for before it is sent again (by the metadata
this tool writes on every object it creates). Passwords go from ``passwords`` straight
into the request; never into a log, an error or the ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from reconciler.errors import ApiError, NotFound, TransportError
from reconciler.live.ledger import Recorder
from reconciler.live.state import PartnerEntry
from reconciler.livekit.client import LiveKitClient
from reconciler.livekit.records import (
    Fields,
    LiveObject,
    ObjectKind,
    desired,
    metadata,
    password_version,
)
from reconciler.manifests.seam import End
from reconciler.plan.actions import Action, Operation
from reconciler.plan.livekit import fields_digest, ledger_key, pending_inbound

Passwords = Mapping[tuple[str, str], str]


class PartnerHandlers:
    def __init__(
        self,
        *,
        recorder: Recorder,
        ends: Mapping[str, End],
        clients: Mapping[str, LiveKitClient],
        passwords: Passwords,
    ) -> None:
        self.recorder = recorder
        self.ends = ends  # by trunk name
        self.clients = clients  # by partner name
        self.passwords = passwords

    def _client(self, action: Action) -> LiveKitClient:
        partner = action.target["partner"]
        client = self.clients.get(partner)
        if client is None:
            raise ApiError(f"partner {partner} is not declared as a LiveKit partner any more")
        return client

    def _fields(self, action: Action) -> tuple[End, ObjectKind, Fields]:
        end = self.ends.get(action.trunk)
        if end is None:
            raise ApiError(f"trunk {action.trunk} no longer has a LiveKit partner")
        kind = ObjectKind(action.target["kind"])
        inbound = self.recorder.ledger.partner_objects.get(
            ledger_key(end.trunk, end.partner, ObjectKind.INBOUND_TRUNK)
        )
        fields = desired(end, kind, inbound.id if inbound else pending_inbound(end.trunk))
        if kind is ObjectKind.DISPATCH_RULE and inbound is None:
            raise ApiError(f"trunk {end.trunk}'s LiveKit inbound trunk does not exist yet")
        return end, kind, fields

    def _password(self, end: End, kind: ObjectKind, fields: Fields) -> str:
        if kind is not ObjectKind.OUTBOUND_TRUNK or not fields.get("auth_username"):
            return ""
        return self.passwords[(end.trunk, str(fields["auth_username"]))]

    async def _remember(self, end: End, kind: ObjectKind, object_id: str, fields: Fields) -> None:
        version = password_version(end) if kind is ObjectKind.OUTBOUND_TRUNK else None
        entry = PartnerEntry(end.partner, object_id, fields_digest(fields), version)
        key = ledger_key(end.trunk, end.partner, kind)
        self.recorder.update(self.recorder.ledger.with_partner_object(key, entry))
        await self.recorder.save()

    async def create(self, action: Action) -> None:
        end, kind, fields = self._fields(action)
        client = self._client(action)
        try:
            created = await client.create(kind, fields, self._password(end, kind, fields))
        except TransportError as error:
            if not error.maybe_committed:
                raise
            found = await self._landed(client, end, kind)
            if found is None:
                raise
            await self._remember(end, kind, found.id, fields)
            # It landed: make it exactly what was asked (the lost answer could not say).
            created = await client.replace(
                kind, found.id, fields, self._password(end, kind, fields)
            )
        await self._remember(end, kind, created.id, fields)
        _expect(kind, fields, created)

    async def _landed(self, client: LiveKitClient, end: End, kind: ObjectKind) -> LiveObject | None:
        owned = {entry.id for entry in self.recorder.ledger.partner_objects.values()}
        for found in (await client.read()).of(kind):
            if found.fields.get("metadata") == metadata(end) and found.id not in owned:
                return found
        return None

    async def update(self, action: Action) -> None:
        """A replace with the managed fields (and an outbound trunk's password); also how an
        object carrying the trunk's mark is adopted, recorded before it is written."""
        end, kind, fields = self._fields(action)
        object_id = action.target["id"]
        client = self._client(action)
        if action.operation is Operation.LIVEKIT_ADOPT:
            key = ledger_key(end.trunk, end.partner, kind)
            owned = self.recorder.ledger.with_partner_object(
                key, PartnerEntry(end.partner, object_id)
            )
            self.recorder.update(owned)
            await self.recorder.save()
        updated = await client.replace(kind, object_id, fields, self._password(end, kind, fields))
        await self._remember(end, kind, updated.id, fields)
        _expect(kind, fields, updated)

    async def delete(self, action: Action) -> None:
        kind = ObjectKind(action.target["kind"])
        with contextlib.suppress(NotFound):  # already gone: forgetting it is what is left
            await self._client(action).delete(kind, action.target["id"])
        key = ledger_key(action.trunk, action.target["partner"], kind)
        self.recorder.update(self.recorder.ledger.with_partner_object(key, None))
        await self.recorder.save()


def _expect(kind: ObjectKind, asked: Fields, answered: LiveObject) -> None:
    """Patch and check: LiveKit's answer must carry every managed field as asked."""
    wrong = sorted(name for name, value in asked.items() if answered.fields.get(name) != value)
    if wrong:
        raise ApiError(
            f"LiveKit answered the {kind.value.replace('_', ' ')} {answered.id} with "
            f"{', '.join(wrong)} other than asked"
        )
