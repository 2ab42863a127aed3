"""The LiveKit end of an account's trunks: what to create, update or delete on LiveKit,
in the same plan, with the same vocabulary, as Exotel's end.

Called by ``plan.build``. Pure: takes each trunk's partner end (``manifests.seam``), the
ledger (which LiveKit objects this account owns, by ID) and what LiveKit lists now, and
adds actions and notices to the account's ``Steps``.

* An object is this account's only when the ledger holds its ID; anything else LiveKit
  lists is reported and never touched (``import`` adopts one).
* A change is drift when the manifest's fields are those last applied (the ledger's
  digest) and LiveKit's differ; otherwise it is the manifest's.
* Passwords are never fields: the outbound trunk's ``password_version`` is compared with
  the one the ledger says LiveKit was given, and a plan shows only the version.
* A credential rotation spans both ends in a safe order: the new credential on Exotel,
  then LiveKit's outbound trunk, then the old credential removed (``rotations``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from reconciler.live.state import Ledger, PartnerEntry, digest
from reconciler.livekit.records import (
    LABEL,
    OWNER,
    LiveObject,
    ObjectKind,
    desired,
    metadata,
    password_version,
    shown,
    wanted,
)
from reconciler.manifests.seam import End, findings
from reconciler.plan.actions import Action, Kind, NoticeKind, Operation, Origin, Resource
from reconciler.plan.steps import Step, Steps, address

RESOURCE = {
    ObjectKind.INBOUND_TRUNK: Resource.LIVEKIT_INBOUND_TRUNK,
    ObjectKind.OUTBOUND_TRUNK: Resource.LIVEKIT_OUTBOUND_TRUNK,
    ObjectKind.DISPATCH_RULE: Resource.LIVEKIT_DISPATCH_RULE,
}
KIND_OF = {resource: kind for kind, resource in RESOURCE.items()}
# partner -> what it lists, by ID; or, when it could not be read (drift goes on), why not
Projects = Mapping[str, Mapping[str, LiveObject] | str]


def ledger_key(trunk: str, partner: str, kind: ObjectKind) -> str:
    return f"{trunk}/{partner}/{kind.value}"


def pending_inbound(trunk: str) -> str:
    """What a dispatch rule names while its inbound trunk is still to be created."""
    return f"(the inbound trunk of {trunk}, once created)"


def fields_digest(fields: Mapping[str, Any]) -> str:
    return digest(dict(fields))


def plan_livekit(
    steps: Steps,
    ends: Sequence[End],
    ledger: Ledger,
    projects: Projects,
    *,
    deleting: frozenset[str] = frozenset(),
) -> None:
    """Add the LiveKit actions of the account's trunks (``ends``: those with a LiveKit
    partner) to ``steps``; ``deleting``: trunks this plan deletes on Exotel."""
    ledger = _after_renames(ledger, steps)
    owned = {entry.id for entry in ledger.partner_objects.values()}
    adopted: set[str] = set()
    wanted_keys: set[str] = set()
    for end in ends:
        objects = projects.get(end.partner)
        if objects is None or isinstance(objects, str):
            steps.notice(
                NoticeKind.UNREADABLE,
                f"partner {end.partner} (LiveKit) could not be read, so trunk {end.trunk}'s "
                f"LiveKit end was not checked: {objects or 'not asked'}",
                address(steps.account.name, end.trunk, Resource.TRUNK),
            )
            wanted_keys |= {ledger_key(end.trunk, end.partner, kind) for kind in ObjectKind}
            continue
        inbound_id = _inbound_id(end, ledger, objects, owned)
        for kind in wanted(end):
            wanted_keys.add(ledger_key(end.trunk, end.partner, kind))
            taken = _one(steps, end, kind, ledger, objects, owned=owned, inbound_id=inbound_id)
            if taken is not None:
                adopted.add(taken)
    _retired(steps, ledger, projects, wanted_keys, deleting)
    _unmanaged(steps, ends, owned | adopted, projects)


def _after_renames(ledger: Ledger, steps: Steps) -> Ledger:
    """The ledger as the LiveKit actions will find it: a trunk renamed in place
    (``renamed_from``) is renamed before its LiveKit end is touched (rank 0, in its
    trunk's turn), and the rename takes its LiveKit objects with it."""
    for spec in steps.account.desired:
        old = spec.renamed_from
        if old and old in ledger.trunks and spec.name not in ledger.trunks:
            ledger = ledger.with_trunk_renamed(old, spec.name)
    return ledger


def marked(
    end: End, kind: ObjectKind, objects: Mapping[str, LiveObject], owned: set[str]
) -> LiveObject | None:
    """An object no ledger holds that carries this trunk's own mark (a ledger restored
    from before it was made, say): adopted rather than made twice."""
    for found in sorted(objects.values(), key=lambda o: o.id):
        if (
            found.kind is kind
            and found.id not in owned
            and found.fields.get("metadata") == metadata(end)
        ):
            return found
    return None


def _inbound_id(
    end: End, ledger: Ledger, objects: Mapping[str, LiveObject], owned: set[str]
) -> str:
    entry = ledger.partner_objects.get(ledger_key(end.trunk, end.partner, ObjectKind.INBOUND_TRUNK))
    if entry is not None and entry.id in objects:
        return entry.id
    found = marked(end, ObjectKind.INBOUND_TRUNK, objects, owned) if entry is None else None
    return found.id if found is not None else pending_inbound(end.trunk)


def _one(
    steps: Steps,
    end: End,
    kind: ObjectKind,
    ledger: Ledger,
    objects: Mapping[str, LiveObject],
    *,
    owned: set[str],
    inbound_id: str,
) -> str | None:
    """The action of one object of a trunk's LiveKit end, if any; returns the ID of an
    object it adopts (one carrying the trunk's mark that no ledger holds)."""
    entry = ledger.partner_objects.get(ledger_key(end.trunk, end.partner, kind))
    fields = desired(end, kind, inbound_id)
    version = password_version(end) if kind is ObjectKind.OUTBOUND_TRUNK else None
    label = f"LiveKit {LABEL[kind]} on {end.partner}"
    target = {"partner": end.partner, "kind": kind.value}
    inbound = address(steps.account.name, end.trunk, Resource.LIVEKIT_INBOUND_TRUNK, end.partner)
    step = functools.partial(
        Step,
        trunk=end.trunk,
        resource=RESOURCE[kind],
        key=end.partner,
        depends=(inbound,) if kind is ObjectKind.DISPATCH_RULE else (),
    )
    found = marked(end, kind, objects, owned) if entry is None else None
    if found is not None:
        before, after = _differences(kind, fields, found, None, version)
        steps.add(
            step(
                operation=Operation.LIVEKIT_ADOPT,
                kind=Kind.UPDATE,
                before={"id": found.id, **before},
                after={"id": found.id, **after},
                reason=(
                    f"{label} {found.id} carries this trunk's mark but the ledger does not "
                    "hold it: adopt it, and set what differs"
                ),
                target={**target, "id": found.id},
            )
        )
        return found.id
    live = objects.get(entry.id) if entry is not None else None
    if entry is None or live is None:
        steps.add(
            step(
                operation=Operation.LIVEKIT_CREATE,
                kind=Kind.CREATE,
                after=shown(kind, fields, version),
                reason=(
                    f"{label} {entry.id} was deleted on LiveKit, outside git: create it again"
                    if entry is not None
                    else f"new: trunk {end.trunk}'s {label}"
                ),
                origin=Origin.DRIFT if entry is not None else Origin.MANIFEST,
                target=target,
            )
        )
        return None
    before, after = _differences(kind, fields, live, entry, version)
    if not after:
        return None
    rotated = "auth_password" in after
    drift = entry.digest == fields_digest(fields) and not rotated
    steps.add(
        step(
            operation=Operation.LIVEKIT_UPDATE,
            kind=Kind.UPDATE,
            before=before,
            after=after,
            reason=(
                f"{label} {entry.id} was changed on LiveKit, outside git: set it back"
                if drift
                else f"trunk {end.trunk}'s {label} {entry.id} differs from the manifests"
            ),
            origin=Origin.DRIFT if drift else Origin.MANIFEST,
            target={**target, "id": entry.id},
        )
    )
    return None


def _differences(
    kind: ObjectKind,
    fields: Mapping[str, Any],
    live: LiveObject,
    entry: PartnerEntry | None,
    version: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of the managed fields that differ; for an outbound trunk with a
    credential, its password too when the ledger does not say LiveKit has this version
    for this username (a password shows only as its version)."""
    changed = [name for name, value in fields.items() if live.fields.get(name) != value]
    before = {name: live.fields.get(name) for name in changed}
    after = {name: fields[name] for name in changed}
    username = fields.get("auth_username")
    if kind is not ObjectKind.OUTBOUND_TRUNK or not username:
        return before, after
    same_user = live.fields.get("auth_username") == username
    if entry is not None and entry.password_version == version and same_user:
        return before, after
    if entry is None or entry.password_version is None:
        before["auth_password"] = "(sensitive, not set by this tool)"  # noqa: S105 (a label)
    elif not same_user:
        before["auth_password"] = f"(sensitive) for {live.fields.get('auth_username')}"
    else:
        before["auth_password"] = f"(sensitive) version {entry.password_version}"
    after["auth_password"] = f"(sensitive) version {version}" + (
        "" if same_user else f" for {username}"
    )
    return before, after


def _retired(
    steps: Steps,
    ledger: Ledger,
    projects: Projects,
    wanted_keys: set[str],
    deleting: frozenset[str],
) -> None:
    """Owned objects nothing wants any more: deleted when their trunk is declared (its
    partner changed or went) or is being deleted; kept with the trunk otherwise."""
    declared = {spec.name for spec in steps.account.desired}
    guarded = {spec.name for spec in steps.account.desired if spec.protect}

    def protected(trunk: str) -> bool:
        held = ledger.trunks.get(trunk)
        return trunk in guarded or (held is not None and held.protect)

    for key, entry in sorted(ledger.partner_objects.items()):
        if key in wanted_keys:
            continue
        trunk, _, kind_text = key.split("/")
        kind = ObjectKind(kind_text)
        if trunk not in deleting and trunk not in declared:
            continue  # the trunk is kept (not declared, not pruned): its LiveKit end too
        objects = projects.get(entry.partner)
        where = address(steps.account.name, trunk, RESOURCE[kind], entry.partner)
        if objects is None or isinstance(objects, str):
            steps.notice(
                NoticeKind.UNREADABLE,
                f"LiveKit {LABEL[kind]} {entry.id} of trunk {trunk} on partner {entry.partner} "
                "is no longer wanted, but that partner is not declared or could not be read: "
                "declare it again to delete the object, or delete it by hand and forget it "
                "with reconciler import",
                where,
            )
            continue
        if protected(trunk):
            steps.notice(
                NoticeKind.RAIL,
                f"trunk {trunk} is protected: deleting its LiveKit {LABEL[kind]} {entry.id} "
                f"on {entry.partner} takes --force",
                where,
            )
        steps.add(
            Step(
                trunk=trunk,
                operation=Operation.LIVEKIT_DELETE,
                kind=Kind.DELETE,
                resource=RESOURCE[kind],
                key=entry.partner,
                before={
                    "id": entry.id,
                    **(dict(objects[entry.id].fields) if entry.id in objects else {}),
                },
                reason=(
                    f"trunk {trunk} no longer has this LiveKit {LABEL[kind]}"
                    if entry.id in objects
                    else f"LiveKit {LABEL[kind]} {entry.id} is already gone: forget it"
                ),
                target={"partner": entry.partner, "kind": kind.value, "id": entry.id},
            )
        )


def seam_notices(steps: Steps, ends: Sequence[End]) -> None:
    """What ``validate`` warns of the seam, in the plan too, where reviewers look: each
    trunk's ends disagreeing, and an account whose partners would take any address."""
    for end in ends:
        where = address(steps.account.name, end.trunk, Resource.TRUNK)
        for _, said in findings(end):
            steps.notice(NoticeKind.SEAM, said, where)
    bare = sorted({end.partner for end in ends if not end.exotel_addresses})
    if bare:
        steps.notice(
            NoticeKind.SEAM,
            f"account {steps.account.name} lists no signalling addresses, so partner(s) "
            f"{', '.join(bare)} allow calls from any address: list Exotel's under "
            "signalling.addresses",
        )


def _unmanaged(steps: Steps, ends: Sequence[End], owned: set[str], projects: Projects) -> None:
    """What LiveKit lists that this account neither owns nor adopts in this plan:
    reported, never touched (a second object with a trunk's mark included); one that
    takes a number of ours (written any way) is the seam's business too."""
    ours = {_digits(number): (end, number) for end in ends for number in end.numbers}
    mine = f"{OWNER}: {steps.account.name}/"
    for partner in sorted({end.partner for end in ends}):
        listed = projects.get(partner)
        objects = listed if isinstance(listed, Mapping) else {}
        for found in sorted(objects.values(), key=lambda o: (o.kind.value, o.id)):
            if found.id in owned:
                continue
            mark = str(found.fields.get("metadata", ""))
            if mark.startswith(OWNER) and not mark.startswith(mine):
                continue  # another account's, by its own ledger
            label = f"LiveKit {LABEL[found.kind]} {found.id} ({found.name or 'no name'})"
            steps.notice(
                NoticeKind.UNMANAGED,
                f"{label} on {partner} is not in this account's ledger: left alone "
                "(reconciler import can bring it under management)",
            )
            if found.kind is not ObjectKind.INBOUND_TRUNK:
                continue
            for number in found.fields.get("numbers", []):
                match = ours.get(_digits(str(number)))
                if match is None:
                    continue
                end, did = match
                spelled = "" if number == did else f", written {number}"
                steps.notice(
                    NoticeKind.SEAM,
                    f"{label} on {partner} also takes {did}{spelled}, trunk {end.trunk}'s "
                    "DID: LiveKit refuses two inbound trunks for one number ('Conflicting "
                    "inbound SIP Trunks') or, when they differ by caller or address, a call "
                    "may match either; remove it, or import it as this trunk's",
                    address(steps.account.name, end.trunk, Resource.TRUNK),
                )


def _digits(number: str) -> str:
    """A number as LiveKit's matching might confuse it: its last ten digits."""
    return "".join(ch for ch in number if ch.isdigit())[-10:]


def owned_by(end: End, objects: Iterable[LiveObject]) -> dict[ObjectKind, LiveObject]:
    """``import``: the objects on LiveKit this end's trunk already has, found by the
    metadata this tool writes, else, among objects no account has marked, by name (a name
    does not say which account: another account's trunk of that name is never taken)."""
    mark = metadata(end)
    listed = list(objects)
    by_mark = [o for o in listed if o.fields.get("metadata") == mark]
    by_name = [
        o
        for o in listed
        if o.name == f"exotel-{end.trunk}"
        and not str(o.fields.get("metadata", "")).startswith(OWNER)
    ]
    found: dict[ObjectKind, LiveObject] = {}
    for candidate in (*by_mark, *by_name):
        found.setdefault(candidate.kind, candidate)
    return found


def rotations(
    actions: list[Action], ends: Sequence[End]
) -> tuple[list[Action], list[tuple[str, str]]]:
    """Order a credential change across both ends: LiveKit's outbound trunk after the
    credential it is given exists on Exotel, the old credential removed after LiveKit
    stopped using it. Returns the actions and, per rotation, (trunk, what it does)."""
    by_trunk = {end.trunk: end for end in ends if end.credential is not None}
    said: list[tuple[str, str]] = []
    result = list(actions)
    for index, action in enumerate(result):
        if action.resource is not Resource.LIVEKIT_OUTBOUND_TRUNK or action.kind is Kind.DELETE:
            continue
        end = by_trunk.get(action.trunk)
        if end is None or end.credential is None:
            continue
        username = end.credential.username
        same = [a for a in result if a.account == action.account and a.trunk == action.trunk]
        added = [
            a.address
            for a in same
            if a.resource is Resource.CREDENTIAL
            and a.key == username
            and a.kind in (Kind.CREATE, Kind.UPDATE, Kind.REPLACE)
        ]
        removed = [
            a
            for a in same
            if a.resource is Resource.CREDENTIAL and a.kind is Kind.DELETE and a.key != username
        ]
        if not added and not removed:
            continue
        if action.kind is Kind.CREATE and not removed:  # a new trunk: nothing to rotate
            result[index] = replace(action, depends_on=(*action.depends_on, *added))
            continue
        result[index] = replace(
            action, depends_on=tuple(dict.fromkeys((*action.depends_on, *added)))
        )
        for old in removed:
            position = result.index(old)
            result[position] = replace(old, depends_on=(*old.depends_on, action.address))
        steps_said = [f"credential {username} set on Exotel"] if added else []
        steps_said.append(f"LiveKit's outbound trunk on {end.partner} given it")
        steps_said += [f"old credential {old.key} removed from Exotel" for old in removed]
        said.append((action.trunk, ", then ".join(steps_said)))
    return result, said
