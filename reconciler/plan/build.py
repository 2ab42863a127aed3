"""Desired state x live state x ledger -> one account's plan: the thing reviewers approve.

Called by the pipeline (``plan``, ``drift``, and ``apply``, which re-plans before it acts
and again to verify). Pure: takes the account's declared trunks and routes, its live
state and its ledger, returns an :class:`AccountPlan`; never calls the API.

What it decides (docs/architecture.md, plans):

* for each declared trunk, what it is (``live.pairing``): managed, renamed in place,
  adopted by name, new, or blocked by a name another trunk holds (a manual step naming
  that trunk's SID); a ledger trunk Exotel no longer has is recreated, labelled drift;
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

Order and dependencies are ``order``'s, safety rails ``rails``', route records ``routes``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.exotel.records import LiveTrunk
from reconciler.live.pairing import Match, Pair, pair
from reconciler.live.state import AccountState, Ledger, TrunkEntry, fingerprint
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.routes import RouteSpec
from reconciler.plan import rails
from reconciler.plan.actions import AccountPlan, Action, Kind, Notice, NoticeKind, Operation, Origin
from reconciler.plan.diff import Change, Op, Resource, children, parts, trunk_fields
from reconciler.plan.operations import KIND, MANUAL_HOW, NOT_IN_MINIMAL, OPERATIONS
from reconciler.plan.order import dependencies, order
from reconciler.plan.routes import route_actions

Fields = Mapping[str, Any] | None


def address(account: str, trunk: str, resource: Resource, key: str = "") -> str:
    if resource is Resource.TRUNK:
        return f"{account}/{trunk}"
    if resource is Resource.ALIAS:
        return f"{account}/{trunk}/alias"
    return f"{account}/{trunk}/{resource}/{key}"


@dataclass(frozen=True)
class AccountInput:
    """Everything ``plan_account`` needs about one account besides state and ledger."""

    name: str
    sid: str
    profile: str
    prune: bool
    desired: tuple[TrunkSpec, ...]
    routes: tuple[RouteSpec, ...] = ()


class _Builder:
    """Collects one account's actions and notices, trunk by trunk."""

    def __init__(self, account: AccountInput, ledger: Ledger, state: AccountState) -> None:
        self.account = account
        self.ledger = ledger
        self.state = state
        self.full = account.profile == "full"
        self.actions: list[Action] = []
        self.notices: list[Notice] = []

    def notice(self, kind: NoticeKind, message: str, where: str = "") -> None:
        self.notices.append(Notice(kind, self.account.name, message, where))

    def act(
        self,
        trunk: str,
        resource: Resource,
        key: str,
        operation: Operation,
        kind: Kind,
        *,
        before: Fields,
        after: Fields,
        reason: str,
        origin: Origin,
        depends: tuple[str, ...] = (),
        target: Mapping[str, str] | None = None,
    ) -> str:
        where = address(self.account.name, trunk, resource, key)
        action = Action(
            address=where,
            kind=kind,
            resource=resource,
            operation=operation,
            account=self.account.name,
            trunk=trunk,
            key=key,
            before=before,
            after=after,
            reason=reason,
            origin=origin,
            depends_on=depends,
            target=dict(target or {}),
        )
        self.actions.append(action)
        return where

    def manual(
        self,
        spec_name: str,
        resource: Resource,
        key: str,
        operation: Operation,
        *,
        before: Fields,
        after: Fields,
        reason: str,
        origin: Origin,
        target: Mapping[str, str],
        how: str | None = None,
    ) -> None:
        """A step for a person; the action keeps its real ``operation``."""
        profile = (
            f" (profile {self.account.profile} has no API for it)"
            if operation in NOT_IN_MINIMAL and how is None
            else ""
        )
        self.act(
            spec_name,
            resource,
            key,
            operation,
            Kind.MANUAL,
            before=before,
            after=after,
            reason=f"{reason}: {how or MANUAL_HOW[operation]}{profile}",
            origin=origin,
            target=target,
        )

    # -- one declared trunk -------------------------------------------------------------

    def declared(self, found: Pair) -> None:
        spec, entry = found.spec, found.entry
        if found.match is Match.NAME_TAKEN:
            self._name_taken(found)
        elif found.match is Match.PENDING:
            self.manual(
                spec.name,
                Resource.TRUNK,
                "",
                Operation.IMPORT_PENDING,
                before=None,
                after={"name": spec.name},
                reason="an earlier create of this trunk may have succeeded without an answer",
                origin=Origin.MANIFEST,
                target={},
            )
        elif found.match is Match.NEW:
            self._create(spec, Origin.MANIFEST, "declared, not yet created")
        elif found.match is Match.ADOPT:
            self._adopt(found)
        elif entry is not None:
            self._paired(found, entry)

    def _paired(self, found: Pair, entry: TrunkEntry) -> None:
        name = found.ledger_name or found.spec.name
        if name in self.state.not_refreshed or entry.sid in self.state.unreadable:
            return
        if entry.sid in self.state.missing:
            reason = f"trunk {entry.sid} was deleted outside the reconciler: recreate it (new SID)"
            self._create(found.spec, Origin.DRIFT, reason)
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
        self.act(
            spec.name,
            Resource.TRUNK,
            "",
            Operation.ADOPT_TRUNK,
            Kind.UPDATE,
            before=ids,
            after=ids,
            reason=f"a live trunk named {spec.name} is not in the ledger: adopt it "
            "(recorded in the ledger, no API call)",
            origin=Origin.MANIFEST,
            target={"trunk_sid": sid},
        )
        self._existing(found, live, Origin.MANIFEST)

    def _name_taken(self, found: Pair) -> None:
        spec, blocker = found.spec, str(found.blocker)
        known = self.ledger.by_sid().get(blocker, blocker)
        self.manual(
            spec.name,
            Resource.TRUNK,
            "",
            Operation.CREATE_TRUNK,
            before=None,
            after={"name": spec.name},
            reason=f"the name {spec.name} is held by live trunk {blocker}, which the ledger "
            f"tracks as {known}",
            how=f"rename that trunk back to {known} (apply does, while {known} is declared), "
            "or give this trunk another name",
            origin=Origin.MANIFEST,
            target={"blocked_by": blocker},
        )

    def _create(self, spec: TrunkSpec, origin: Origin, reason: str) -> None:
        after = {"name": spec.name, "nso_code": spec.nso_code, "domain_name": spec.domain_name}
        where = self.act(
            spec.name,
            Resource.TRUNK,
            "",
            Operation.CREATE_TRUNK,
            Kind.CREATE,
            before=None,
            after=after,
            reason=reason,
            origin=origin,
        )
        for change in children(spec, None, None):
            self._child(spec, change, origin, depends=(where,), target={})

    def _existing(self, found: Pair, live: LiveTrunk, origin: Origin) -> None:
        spec, entry = found.spec, found.entry
        target = {"trunk_sid": live.sid}
        changes = children(spec, live, entry)
        fields = trunk_fields(spec, live)
        renaming = found.renaming or "name" in fields
        impossible = self._impossible(changes, fields, renaming=found.match is Match.RENAMED)
        if impossible and spec.allow_replace and not spec.protect:
            self._replace(spec, live, impossible, origin)
            return
        depends: tuple[str, ...] = ()
        if renaming:
            depends = self._rename(found, live, target)
        if "domain_name" in fields:
            self.manual(
                spec.name,
                Resource.TRUNK,
                "",
                Operation.CHANGE_DOMAIN,
                before={"domain_name": live.domain_name},
                after={"domain_name": spec.domain_name},
                reason="domain_name differs",
                origin=origin,
                target=target,
            )
        desired = parts(spec) if changes and entry is not None and entry.parts else {}
        for change in changes:
            self._child(
                spec,
                change,
                _origin(change, entry, desired, origin),
                depends=depends,
                target=target,
            )

    def _rename(self, found: Pair, live: LiveTrunk, target: Mapping[str, str]) -> tuple[str, ...]:
        """The rename, as an action the children wait for, or a manual step."""
        spec, old = found.spec, found.ledger_name
        before = {"name": live.name or old or spec.name}
        after = {"name": spec.name}
        if found.renaming:
            why, origin = f"renamed from {old} in the manifests", Origin.MANIFEST
        else:
            why, origin = f"renamed to {live.name} outside the reconciler", Origin.DRIFT
        if found.match is Match.RENAME_TAKEN:
            self.manual(
                spec.name,
                Resource.TRUNK,
                "",
                Operation.RENAME_TRUNK,
                before=before,
                after=after,
                reason=f"{why}, but live trunk {found.blocker} already has the name {spec.name}",
                how=f"import it (reconciler import --account {self.account.name} --trunk-sid "
                f"{found.blocker}) or rename it first, then apply again",
                origin=origin,
                target=target,
            )
            return ()
        if not self.full:
            self.manual(
                spec.name,
                Resource.TRUNK,
                "",
                Operation.RENAME_TRUNK,
                before=before,
                after=after,
                reason=why,
                origin=origin,
                target=target,
            )
            return ()
        where = self.act(
            spec.name,
            Resource.TRUNK,
            "",
            Operation.RENAME_TRUNK,
            Kind.UPDATE,
            before=before,
            after=after,
            reason=why,
            origin=origin,
            target=target,
        )
        return (where,)

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
                if operation in NOT_IN_MINIMAL and operation is not Operation.UPDATE_CREDENTIAL:
                    found.append(
                        f"profile minimal cannot {operation.replace('_', ' ')} {change.key}"
                    )
        return found

    def _replace(
        self, spec: TrunkSpec, live: LiveTrunk, reasons: Sequence[str], origin: Origin
    ) -> None:
        before = {"sid": live.sid, "name": live.name or spec.name, "domain_name": live.domain_name}
        after = {"name": spec.name, "nso_code": spec.nso_code, "domain_name": spec.domain_name}
        where = self.act(
            spec.name,
            Resource.TRUNK,
            "",
            Operation.REPLACE_TRUNK,
            Kind.REPLACE,
            before=before,
            after=after,
            reason="allow_replace: rebuild the trunk because " + "; ".join(reasons),
            origin=origin,
            target={"trunk_sid": live.sid},
        )
        self.notice(
            NoticeKind.REPLACEMENT,
            f"trunk {spec.name} will be replaced: it gets a new SID, and Connect applets or "
            f"Dynamic URLs that dial sip:{live.sid} must be updated",
            where,
        )
        for change in children(spec, None, None):
            self._child(spec, change, origin, depends=(where,), target={})

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
        if not self.full and operation is Operation.UPDATE_CREDENTIAL:
            operation, kind = Operation.REPLACE_CREDENTIAL, Kind.REPLACE
            reason += " (profile minimal: delete and re-create the credential)"
        ids = {**target, **change.ids}
        if not self.full and operation in NOT_IN_MINIMAL:
            self.manual(
                spec.name,
                change.resource,
                change.key,
                operation,
                before=change.before,
                after=change.after,
                reason=reason,
                origin=origin,
                target=ids,
            )
            return
        self.act(
            spec.name,
            change.resource,
            change.key,
            operation,
            kind,
            before=change.before,
            after=change.after,
            reason=reason,
            origin=origin,
            depends=depends,
            target=ids,
        )

    # -- trunks in the ledger that are no longer declared, and trunks nobody owns --------

    def undeclared(self, entries: Mapping[str, TrunkEntry]) -> None:
        for name, entry in entries.items():
            where = address(self.account.name, name, Resource.TRUNK)
            if entry.protect:
                self.notice(
                    NoticeKind.NOT_DECLARED,
                    f"trunk {name} ({entry.sid}) is protected and no longer declared: kept",
                    where,
                )
            elif not self.account.prune:
                self.notice(
                    NoticeKind.NOT_DECLARED,
                    f"trunk {name} ({entry.sid}) is no longer "
                    "declared; prune is off, so it is left alone",
                    where,
                )
            else:
                gone = entry.sid in self.state.missing
                self.act(
                    name,
                    Resource.TRUNK,
                    "",
                    Operation.DELETE_TRUNK,
                    Kind.DELETE,
                    before={"sid": entry.sid, "name": name},
                    after=None,
                    reason="already gone from Exotel: forget it"
                    if gone
                    else "no longer declared (prune: true): delete it and everything on it",
                    origin=Origin.MANIFEST,
                    target={"trunk_sid": entry.sid},
                )

    def unmanaged(self, trunks: Mapping[str, str]) -> None:
        for name, sid in trunks.items():
            self.notice(
                NoticeKind.UNMANAGED,
                f"live trunk {name} ({sid}) is neither declared nor in the ledger: left alone "
                "(reconciler import can bring it under management)",
                address(self.account.name, name, Resource.TRUNK),
            )

    def state_notices(self) -> None:
        """What this refresh could not look at, and what the profile cannot see."""
        for sid, why in sorted(self.state.unreadable.items()):
            name = self.ledger.by_sid().get(sid, sid)
            self.notice(
                NoticeKind.UNREADABLE,
                f"trunk {name} ({sid}) could not be read, so it was not checked: {why}",
                address(self.account.name, name, Resource.TRUNK),
            )
        if self.state.not_refreshed:
            self.notice(
                NoticeKind.NOT_REFRESHED,
                f"{len(self.state.not_refreshed)} trunk(s) not refreshed (--refresh changed): "
                "their manifests match the last apply, so drift on them was not looked for",
            )
        if self.account.profile == "minimal":
            self.notice(
                NoticeKind.PROFILE,
                "profile minimal: trunk names and settings cannot be read, so the alias is "
                "compared with the last applied one and unmanaged trunks are not listed",
            )


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


def plan_account(
    account: AccountInput, ledger: Ledger, state: AccountState, *, max_delete: int | None = None
) -> AccountPlan:
    """One account's plan: ordered actions and the notices a reviewer must see."""
    builder = _Builder(account, ledger, state)
    pairing = pair(account.desired, ledger, state.listed)
    for found in pairing:
        builder.declared(found)
    builder.undeclared(pairing.undeclared)
    builder.unmanaged(pairing.unmanaged)
    builder.actions += route_actions(account.name, account.routes, ledger.routes)
    builder.notices += rails.empty_checkout(
        account.name, declared=len(account.desired), tracked=len(ledger.trunks)
    )
    builder.state_notices()
    managed = rails.managed(state)
    actions = order(dependencies(builder.actions))
    builder.notices += rails.too_many_deletions(
        account.name, actions, managed_objects=managed, max_delete=max_delete
    )
    return AccountPlan(
        account=account.name,
        sid=account.sid,
        profile=account.profile,
        actions=actions,
        notices=tuple(builder.notices),
        managed=managed,
        refreshed=len(state.trunks),
        not_refreshed=len(state.not_refreshed),
        calls=state.calls,
    )
