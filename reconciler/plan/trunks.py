"""One declared trunk, paired (``live.pairing``) -> its steps.

Called by ``plan.build`` for each declared trunk. Pure. What it decides:

* by the pairing: create a new trunk; adopt a live one of its name; recreate a ledger
  trunk Exotel no longer has (drift); diff a paired one; or, when the name is held by
  another trunk, a manual step naming that trunk's SID;
* which API operation each child change needs (``diff``, then ``operations``), and
  whether the account's profile has it. A change the profile cannot make becomes, for a
  trunk with ``allow_replace`` and without ``protect``, a replacement of the whole trunk
  (``-/+``, a new SID, with a loud warning for Connect applets that dial
  ``sip:<old sid>``), and otherwise a manual step (``!``) saying what to do by hand;
* whether each action comes from a manifest change or from drift: when a child's
  desired state still matches its digest at the last apply (or, for ledgers written
  before digests were kept, the trunk's whole fingerprint), the difference was made by
  hand; a credential whose password the ledger never knew (after an import) is a
  manifest change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.exotel.records import LiveTrunk
from reconciler.live.pairing import Match, Pair
from reconciler.live.state import AccountState, Ledger, TrunkEntry, fingerprint
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import Kind, NoticeKind, Operation, Origin, Resource
from reconciler.plan.diff import Change, children, parts, trunk_fields
from reconciler.plan.kinds import Op
from reconciler.plan.operations import KIND, MINIMAL_SUBSTITUTES, NOT_IN_MINIMAL, OPERATIONS
from reconciler.plan.steps import Step, Steps


class TrunkPlanner:
    def __init__(self, steps: Steps, ledger: Ledger, state: AccountState) -> None:
        self.steps = steps
        self.ledger = ledger
        self.state = state
        self.full = steps.account.profile == "full"

    def declared(self, found: Pair) -> None:
        spec = found.spec
        if found.match is Match.NAME_TAKEN:
            self._name_taken(found)
        elif found.match is Match.PENDING:
            why = "an earlier create of this trunk may have succeeded without an answer"
            self.steps.manual(
                Step(
                    trunk=spec.name,
                    operation=Operation.IMPORT_PENDING,
                    kind=Kind.MANUAL,
                    after={"name": spec.name},
                    reason=why,
                )
            )
        elif found.match is Match.NEW:
            self._create(spec, Origin.MANIFEST, "declared, not yet created")
        elif found.match is Match.ADOPT:
            self._adopt(found)
        elif found.entry is not None:
            self._paired(found, found.entry)

    def _paired(self, found: Pair, entry: TrunkEntry) -> None:
        name = found.ledger_name or found.spec.name
        if name in self.state.not_refreshed or entry.sid in self.state.unreadable:
            return
        if entry.sid in self.state.missing:
            reason = f"trunk {entry.sid} was deleted outside the reconciler: recreate it (new SID)"
            self._create(found.spec, Origin.DRIFT, reason)
            self.steps.notice(
                NoticeKind.REPLACEMENT,
                f"trunk {found.spec.name} was deleted outside the reconciler and will be "
                f"recreated with a new SID: Connect applets or Dynamic URLs that dial "
                f"sip:{entry.sid} must be updated",
                f"{self.steps.account.name}/{found.spec.name}",
            )
            return
        live = self.state.trunks.get(entry.sid)
        if live is not None:
            drift = entry.fingerprint == fingerprint(found.spec)
            self._existing(found, live, Origin.DRIFT if drift else Origin.MANIFEST)

    def _adopt(self, found: Pair) -> None:
        spec, sid = found.spec, str(found.sid)
        if sid in self.state.unreadable:
            return
        live = self.state.trunks.get(sid)
        if live is None:  # gone between the list and the read
            self._create(spec, Origin.MANIFEST, "declared, not yet created")
            return
        ids = {"sid": sid, "name": spec.name}
        why = (
            f"a live trunk named {spec.name} is not in the ledger: adopt it "
            "(recorded in the ledger, no API call)"
        )
        if found.stale is not None:
            why = (
                f"the ledger's trunk {found.stale.sid} is gone from Exotel, and a live trunk "
                f"named {spec.name} ({sid}) is not in the ledger: adopt it in its place "
                "(recorded in the ledger, no API call)"
            )
        self.steps.add(
            Step(
                trunk=spec.name,
                operation=Operation.ADOPT_TRUNK,
                kind=Kind.UPDATE,
                before=ids,
                after=ids,
                reason=why,
                target={"trunk_sid": sid},
            )
        )
        self._existing(found, live, Origin.MANIFEST)

    def _name_taken(self, found: Pair) -> None:
        spec, blocker = found.spec, str(found.blocker)
        known = self.ledger.by_sid().get(blocker, blocker)
        why = (
            f"the name {spec.name} is held by live trunk {blocker}, which the ledger tracks "
            f"as {known}"
        )
        how = (
            f"rename that trunk back to {known} (apply does, while {known} is declared), "
            "or give this trunk another name"
        )
        step = Step(
            trunk=spec.name,
            operation=Operation.CREATE_TRUNK,
            kind=Kind.CREATE,
            after={"name": spec.name},
            reason=why,
            target={"blocked_by": blocker},
        )
        self.steps.manual(step, how=how)

    def _create(self, spec: TrunkSpec, origin: Origin, reason: str) -> None:
        step = Step(
            trunk=spec.name,
            operation=Operation.CREATE_TRUNK,
            kind=Kind.CREATE,
            after=_trunk_fields(spec),
            reason=reason,
            origin=origin,
        )
        self._new_trunk(spec, step)

    def _new_trunk(self, spec: TrunkSpec, step: Step) -> str:
        """A trunk made afresh (created or replaced), then everything on it."""
        where = self.steps.add(step)
        for change in children(spec, None, None):
            self._child(spec, change, step.origin, depends=(where,), target={})
        return where

    def _existing(self, found: Pair, live: LiveTrunk, origin: Origin) -> None:
        spec, entry = found.spec, found.entry
        target = {"trunk_sid": live.sid}
        changes = children(spec, live, entry)
        fields = trunk_fields(spec, live)
        impossible = self._impossible(changes, fields, renaming=found.match is Match.RENAMED)
        if impossible and spec.allow_replace and not spec.protect:
            self._replace(spec, live, impossible, origin)
            return
        if entry is not None and entry.protect != spec.protect:
            self.steps.add(
                Step(
                    trunk=spec.name,
                    operation=Operation.RECORD_PROTECT,
                    kind=Kind.UPDATE,
                    key="protect",
                    before={"protect": entry.protect},
                    after={"protect": spec.protect},
                    reason="protect is kept in the ledger: apply records it (no API call)",
                    target=target,
                )
            )
        depends: tuple[str, ...] = ()
        if found.renaming or "name" in fields:
            depends = self._rename(found, live, target)
        if "domain_name" in fields:
            step = Step(
                trunk=spec.name,
                operation=Operation.CHANGE_DOMAIN,
                kind=Kind.UPDATE,
                before={"domain_name": live.domain_name},
                after={"domain_name": spec.domain_name},
                reason="domain_name differs",
                origin=origin,
                target=target,
            )
            self.steps.manual(step)
        desired = parts(spec) if changes and entry is not None and entry.parts else {}
        for change in changes:
            child_origin = _origin(change, entry, desired, origin)
            self._child(spec, change, child_origin, depends=depends, target=target)

    def _rename(self, found: Pair, live: LiveTrunk, target: Mapping[str, str]) -> tuple[str, ...]:
        """The rename, as an action the children wait for, or a manual step."""
        spec, old = found.spec, found.ledger_name
        if found.renaming:
            why, origin = f"renamed from {old} in the manifests", Origin.MANIFEST
        else:
            why, origin = f"renamed to {live.name} outside the reconciler", Origin.DRIFT
        step = Step(
            trunk=spec.name,
            operation=Operation.RENAME_TRUNK,
            kind=Kind.UPDATE,
            before={"name": live.name or old or spec.name},
            after={"name": spec.name},
            reason=why,
            origin=origin,
            target=target,
        )
        if found.match is Match.RENAME_TAKEN:
            taken = f"{why}, but live trunk {found.blocker} already has the name {spec.name}"
            how = (
                f"import it (reconciler import --account {self.steps.account.name} "
                f"--trunk-sid {found.blocker}) or rename it first, then apply again"
            )
            self.steps.manual(replace(step, reason=taken), how=how)
            return ()
        if not self.full:
            self.steps.manual(step)
            return ()
        return (self.steps.add(step),)

    def _impossible(
        self, changes: Sequence[Change], fields: Sequence[str], *, renaming: bool
    ) -> list[str]:
        """What the API cannot do to this trunk in place, as reasons for a replacement."""
        found = []
        if "domain_name" in fields:
            found.append("the API cannot change domain_name")
        if not self.full:
            if renaming or "name" in fields:
                found.append("profile minimal cannot rename a trunk")
            for change in changes:
                operation = OPERATIONS[(change.resource, change.op)]
                if operation in NOT_IN_MINIMAL and operation not in MINIMAL_SUBSTITUTES:
                    found.append(
                        f"profile minimal cannot {operation.replace('_', ' ')} {change.key}"
                    )
        return found

    def _replace(
        self, spec: TrunkSpec, live: LiveTrunk, reasons: Sequence[str], origin: Origin
    ) -> None:
        before = {"sid": live.sid, "name": live.name or spec.name, "domain_name": live.domain_name}
        step = Step(
            trunk=spec.name,
            operation=Operation.REPLACE_TRUNK,
            kind=Kind.REPLACE,
            before=before,
            after=_trunk_fields(spec),
            reason="allow_replace: rebuild the trunk because " + "; ".join(reasons),
            origin=origin,
            target={"trunk_sid": live.sid},
        )
        where = self._new_trunk(spec, step)
        self.steps.notice(
            NoticeKind.REPLACEMENT,
            f"trunk {spec.name} will be replaced: it gets a new SID, and Connect applets or "
            f"Dynamic URLs that dial sip:{live.sid} must be updated",
            where,
        )

    def _child(
        self,
        spec: TrunkSpec,
        change: Change,
        origin: Origin,
        *,
        depends: tuple[str, ...],
        target: Mapping[str, str],
    ) -> None:
        operation = OPERATIONS[(change.resource, change.op)]
        kind = KIND[change.op]
        reason = _child_reason(change)
        if not self.full and operation in MINIMAL_SUBSTITUTES:
            operation, kind = MINIMAL_SUBSTITUTES[operation], Kind.REPLACE
            reason += " (profile minimal: delete and re-create the credential)"
        step = Step(
            trunk=spec.name,
            operation=operation,
            kind=kind,
            resource=change.resource,
            key=change.key,
            before=change.before,
            after=change.after,
            reason=reason,
            origin=origin,
            depends=depends,
            target={**target, **change.ids},
        )
        if not self.full and operation in NOT_IN_MINIMAL:
            self.steps.manual(step)
        else:
            self.steps.add(step)


def _trunk_fields(spec: TrunkSpec) -> dict[str, str | None]:
    return {"name": spec.name, "nso_code": spec.nso_code, "domain_name": spec.domain_name}


def _origin(
    change: Change, entry: TrunkEntry | None, desired: Mapping[str, str], trunk: Origin
) -> Origin:
    """Drift or manifest, for one child: unchanged in the manifests since the last apply
    (same digest, or absent both then and now) means live state moved by hand."""
    if (
        change.resource is Resource.CREDENTIAL
        and change.op is Op.MODIFY
        and (change.before or {}).get("password_version") is None
    ):
        return Origin.MANIFEST  # the password was never set through the reconciler
    if entry is None or not entry.parts:
        return trunk
    key = f"{change.resource}:{change.key}"
    return Origin.DRIFT if desired.get(key) == entry.parts.get(key) else Origin.MANIFEST


def _child_reason(change: Change) -> str:
    if change.op is Op.ADD:
        return "declared, not live"
    if change.op is Op.REMOVE:
        return "live, not declared"
    if change.resource is Resource.CREDENTIAL and "password_version" in change.fields:
        before = (change.before or {}).get("password_version")
        if before is None:
            return "password unknown to the ledger: set it from the manifest's secret"
        return (
            f"password_version {before} -> {(change.after or {}).get('password_version')}: rotate"
        )
    return ", ".join(
        f"{name} {(change.before or {}).get(name)} -> {(change.after or {}).get(name)}"
        for name in change.fields
    )
