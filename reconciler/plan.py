"""Changes -> an ordered, capability-aware plan: the thing reviewers approve.

Called by the CLI (``plan``, and ``apply`` which re-plans before it acts). Pure: takes
desired state, live state and the ledger, returns a :class:`Plan`; never calls the API.

What it decides (DESIGN.md sections 3 and 5):

* which API operation each change needs, and whether the account's profile has it.
  A change the profile cannot make becomes, for a trunk with ``allow_replace`` and
  without ``protect``, a replacement of the whole trunk (``-/+``, a new SID, with a loud
  warning for Connect applets that dial ``sip:<old sid>``), and otherwise a manual
  step (``!``) saying exactly what to do in the dashboard;
* pairing by identity: a declared trunk is the ledger's trunk of that name, or of its
  ``renamed_from`` (an in-place rename), or a live trunk of that name not yet in the
  ledger (adopted, never created twice); a ledger trunk that Exotel no longer has is
  recreated, labelled drift;
* order and dependencies: trunk creates first; whitelisted IPs before destination URIs;
  DIDs; the alias after DIDs; credentials; deletes in reverse (URIs before IPs) and
  trunk deletes last; a DID moving between trunks is unmapped before it is mapped;
* safety rails, shown as warnings here and enforced by apply: protected trunks are never
  deleted or replaced; an account whose manifests declare no trunks while its ledger has
  some; more deletions than the limit;
* whether each action comes from a manifest change or from drift: when a child's
  desired state still matches its digest at the last apply (or, for ledgers written
  before digests were kept, the trunk's whole fingerprint), the difference was made by
  hand; a credential whose password the ledger never knew (after an import) is a
  manifest change.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconciler import canonical
from reconciler.actions import (
    AccountPlan,
    Action,
    Kind,
    Notice,
    NoticeKind,
    Origin,
)
from reconciler.capabilities import KIND, MANUAL_HOW, NOT_IN_MINIMAL, OPERATIONS, RANK
from reconciler.diff import Change, Op, Resource, children, parts, trunk_fields
from reconciler.models import TrunkSpec
from reconciler.route_models import RouteSpec
from reconciler.state import AccountState, Ledger, LiveTrunk, TrunkEntry, fingerprint, sha256_of

ROUTES_TRUNK = "(routes)"  # the pseudo-trunk route actions are grouped under
DELETE_SHARE = 0.3  # default --max-delete: 30% of managed objects...
DELETE_FLOOR = 10  # ...when there are at least this many
Fields = Mapping[str, Any] | None


def address(account: str, trunk: str, resource: Resource, key: str = "") -> str:
    if resource is Resource.TRUNK:
        return f"{account}/{trunk}"
    if resource is Resource.ALIAS:
        return f"{account}/{trunk}/alias"
    if resource is Resource.ROUTE:
        return f"{account}/route/{key}"
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
        operation: str,
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
        self.actions.append(
            Action(
                where, kind, resource, operation, self.account.name, trunk, key,
                before, after, reason, origin, depends, dict(target or {}),
            )
        )  # fmt: skip
        return where

    # -- one declared trunk -------------------------------------------------------------

    def declared(self, spec: TrunkSpec) -> None:
        ledger_name, entry = self._ledger_entry(spec)
        if entry is not None and (
            ledger_name in self.state.not_refreshed or entry.sid in self.state.unreadable
        ):
            return
        if entry is not None and entry.sid in self.state.missing:
            reason = f"trunk {entry.sid} was deleted outside the reconciler: recreate it (new SID)"
            self._create(spec, Origin.DRIFT, reason)
            return
        if entry is not None:
            live = self.state.trunks.get(entry.sid)
            if live is not None:
                drift = entry.fingerprint == fingerprint(spec)
                self._existing(
                    spec, live, entry, ledger_name, Origin.DRIFT if drift else Origin.MANIFEST
                )
            return
        adopted = self._adoptable(spec)
        if adopted is None and spec.name in self.ledger.pending:
            self._manual(
                spec, resource=Resource.TRUNK, key="", operation="import_pending",
                before=None, after={"name": spec.name},
                reason="an earlier create of this trunk may have succeeded without an answer",
                origin=Origin.MANIFEST, target={},
            )  # fmt: skip
            return
        if adopted is None:
            self._create(spec, Origin.MANIFEST, "declared, not yet created")
            return
        ids = {"sid": adopted.sid, "name": spec.name}
        self.act(
            spec.name, Resource.TRUNK, "", "adopt_trunk", Kind.UPDATE, before=ids, after=ids,
            reason=f"a live trunk named {spec.name} is not in the ledger: adopt it "
            "(recorded in the ledger, no API call)",
            origin=Origin.MANIFEST, target={"trunk_sid": adopted.sid},
        )  # fmt: skip
        self._existing(spec, adopted, None, None, Origin.MANIFEST)

    def _ledger_entry(self, spec: TrunkSpec) -> tuple[str | None, TrunkEntry | None]:
        for name in (spec.name, spec.renamed_from):
            if name is not None and name in self.ledger.trunks:
                return name, self.ledger.trunks[name]
        return None, None

    def _adoptable(self, spec: TrunkSpec) -> LiveTrunk | None:
        if self.state.listed is None or spec.name not in self.state.listed:
            return None
        sid = self.state.listed[spec.name]
        if sid in self.ledger.by_sid():
            return None  # a ledger trunk under another name: not ours to adopt
        return self.state.trunks.get(sid)

    def _create(self, spec: TrunkSpec, origin: Origin, reason: str) -> None:
        after = {"name": spec.name, "nso_code": spec.nso_code, "domain_name": spec.domain_name}
        where = self.act(
            spec.name, Resource.TRUNK, "", "create_trunk", Kind.CREATE,
            before=None, after=after, reason=reason, origin=origin,
        )  # fmt: skip
        for change in children(spec, None, None):
            self._child(spec, change, origin, depends=(where,), target={})

    def _existing(
        self,
        spec: TrunkSpec,
        live: LiveTrunk,
        entry: TrunkEntry | None,
        ledger_name: str | None,
        origin: Origin,
    ) -> None:
        target = {"trunk_sid": live.sid}
        changes = children(spec, live, entry)
        fields = trunk_fields(spec, live)
        renaming = ledger_name is not None and ledger_name != spec.name
        impossible = self._impossible(changes, fields, renaming=renaming)
        if impossible and spec.allow_replace and not spec.protect:
            self._replace(spec, live, impossible, origin)
            return
        depends: tuple[str, ...] = ()
        if renaming or "name" in fields:
            before = {"name": live.name or ledger_name or spec.name}
            why = (
                f"renamed from {ledger_name} in the manifests"
                if renaming
                else f"renamed to {live.name} outside the reconciler"
            )
            rename_origin = Origin.MANIFEST if renaming else Origin.DRIFT
            if self.full:
                depends = (
                    self.act(
                        spec.name, Resource.TRUNK, "", "rename_trunk", Kind.UPDATE, before=before,
                        after={"name": spec.name}, reason=why, origin=rename_origin, target=target,
                    ),
                )  # fmt: skip
            else:
                self._manual(
                    spec, resource=Resource.TRUNK, key="", operation="rename_trunk",
                    before=before, after={"name": spec.name}, reason=why, origin=rename_origin,
                    target=target,
                )  # fmt: skip
        if "domain_name" in fields:
            self._manual(
                spec, resource=Resource.TRUNK, key="", operation="change_domain",
                before={"domain_name": live.domain_name}, after={"domain_name": spec.domain_name},
                reason="domain_name differs", origin=origin, target=target,
            )  # fmt: skip
        desired = parts(spec) if changes and entry is not None and entry.parts else {}
        for change in changes:
            self._child(
                spec, change, _origin(change, entry, desired, origin), depends=depends,
                target=target,
            )  # fmt: skip

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
                if operation in NOT_IN_MINIMAL and operation != "update_credential":
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
            spec.name, Resource.TRUNK, "", "replace_trunk", Kind.REPLACE, before=before,
            after=after, reason="allow_replace: rebuild the trunk because " + "; ".join(reasons),
            origin=origin, target={"trunk_sid": live.sid},
        )  # fmt: skip
        self.notice(
            NoticeKind.REPLACEMENT,
            f"trunk {spec.name} will be replaced: it gets a new SID, and Connect applets or "
            f"Dynamic URLs that dial sip:{live.sid} must be updated",
            where,
        )
        for change in children(spec, None, None):
            self._child(spec, change, origin, depends=(where,), target={})

    def _manual(
        self,
        spec: TrunkSpec,
        *,
        resource: Resource,
        key: str,
        operation: str,
        before: Fields,
        after: Fields,
        reason: str,
        origin: Origin,
        target: Mapping[str, str],
    ) -> None:
        profile = (
            f" (profile {self.account.profile} has no API for it)"
            if operation in NOT_IN_MINIMAL
            else ""
        )
        self.act(
            spec.name, resource, key, "manual", Kind.MANUAL, before=before, after=after,
            reason=f"{reason}: {MANUAL_HOW[operation]}{profile}", origin=origin, target=target,
        )  # fmt: skip

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
        if not self.full and operation == "update_credential":
            operation, kind = "replace_credential", Kind.REPLACE
            reason += " (profile minimal: delete and re-create the credential)"
        ids = {**target, **change.ids}
        if not self.full and operation in NOT_IN_MINIMAL:
            self._manual(
                spec, resource=change.resource, key=change.key, operation=operation,
                before=change.before, after=change.after, reason=reason, origin=origin, target=ids,
            )  # fmt: skip
            return
        self.act(
            spec.name, change.resource, change.key, operation, kind, before=change.before,
            after=change.after, reason=reason, origin=origin, depends=depends, target=ids,
        )  # fmt: skip

    # -- trunks in the ledger that are no longer declared, and trunks nobody owns --------

    def undeclared(self, claimed: set[str]) -> None:
        for name, entry in sorted(self.ledger.trunks.items()):
            if name in claimed:
                continue
            where = address(self.account.name, name, Resource.TRUNK)
            if entry.protect:
                self.notice(NoticeKind.NOT_DECLARED, f"trunk {name} ({entry.sid}) is protected "
                            "and no longer declared: kept", where)  # fmt: skip
            elif not self.account.prune:
                self.notice(NoticeKind.NOT_DECLARED, f"trunk {name} ({entry.sid}) is no longer "
                            "declared; prune is off, so it is left alone", where)  # fmt: skip
            else:
                gone = entry.sid in self.state.missing
                self.act(
                    name, Resource.TRUNK, "", "delete_trunk", Kind.DELETE,
                    before={"sid": entry.sid, "name": name}, after=None,
                    reason="already gone from Exotel: forget it" if gone
                    else "no longer declared (prune: true): delete it and everything on it",
                    origin=Origin.MANIFEST, target={"trunk_sid": entry.sid},
                )  # fmt: skip

    def routes(self) -> None:
        """Route changes since the last apply: served by ``reconciler serve``, not Exotel."""
        declared = {route.did: route for route in self.account.routes}
        recorded = self.ledger.routes
        why = (
            "takes effect when these manifests are deployed to reconciler serve; apply only "
            "records it (no Exotel API call)"
        )
        for did in sorted(declared.keys() | recorded.keys()):
            route = declared.get(did)
            now = route_fingerprint(route) if route else None
            if now == recorded.get(did):
                continue
            after = route_summary(route) if route else None
            kind = (
                Kind.CREATE
                if did not in recorded
                else Kind.DELETE
                if route is None
                else Kind.UPDATE
            )
            self.act(
                ROUTES_TRUNK, Resource.ROUTE, did, "record_route", kind,
                before={"fingerprint": recorded.get(did)} if did in recorded else None,
                after=after, reason=why, origin=Origin.MANIFEST,
                target={"fingerprint": now} if now else {},
            )  # fmt: skip

    def unmanaged(self, adopted: set[str]) -> None:
        if self.state.listed is None:
            return
        owned = set(self.ledger.by_sid()) | adopted
        for name, sid in sorted(self.state.listed.items()):
            if sid not in owned:
                self.notice(
                    NoticeKind.UNMANAGED,
                    f"live trunk {name} ({sid}) is neither declared nor in the ledger: left alone "
                    "(reconciler import can bring it under management)",
                    address(self.account.name, name, Resource.TRUNK),
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


def _dependencies(actions: list[Action]) -> list[Action]:
    """The dependencies between children that DESIGN.md section 5 requires.

    Only the operations that need one are looked at, each against an index built once
    per trunk, so a plan of 100,000 actions stays linear."""
    added_ips: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    deleted_destinations: dict[tuple[str, str], list[str]] = {}
    mapped: dict[tuple[str, str, str], str] = {}
    unmapped: dict[tuple[str, str], str] = {}
    for action in actions:
        trunk = (action.account, action.trunk)
        if action.operation == "add_ip":
            first, last = canonical.network_range(action.key)
            added_ips.setdefault(trunk, []).append((first, last, action.address))
        elif action.operation == "delete_destination":
            deleted_destinations.setdefault(trunk, []).append(action.address)
        elif action.operation == "map_number":
            mapped[(*trunk, action.key)] = action.address
        elif action.operation == "unmap_number":
            unmapped[(action.account, action.key)] = action.address
    result = []
    for action in actions:
        trunk = (action.account, action.trunk)
        extra: list[str] = []
        if action.operation == "add_destination":
            host = canonical.destination_ip(action.key)
            if host is not None:
                value = int(host)
                extra = [
                    where for low, high, where in added_ips.get(trunk, ()) if low <= value <= high
                ]
        elif action.operation == "delete_ip":
            extra = deleted_destinations.get(trunk, [])
        elif action.operation == "set_alias" and action.after:
            alias_map = mapped.get((*trunk, str(action.after.get("alias"))))
            extra = [alias_map] if alias_map else []
        elif action.operation == "map_number":
            moved_from = unmapped.get((action.account, action.key))
            extra = [moved_from] if moved_from and moved_from != action.address else []
        if extra:
            depends = tuple(dict.fromkeys((*action.depends_on, *extra)))
            action = replace(action, depends_on=depends)  # noqa: PLW2901
        result.append(action)
    return result


def _order(actions: Iterable[Action]) -> tuple[Action, ...]:
    """Kahn's topological sort over ``depends_on``, always taking the ready action of
    lowest rank (DESIGN.md section 5), then account, trunk and address: O(n log n)."""
    pending = sorted(actions, key=lambda a: (RANK[a.operation], a.account, a.trunk, a.address))
    position = {action.address: index for index, action in enumerate(pending)}
    waiting = [0] * len(pending)
    dependents: dict[int, list[int]] = {}
    for index, action in enumerate(pending):
        for needed in action.depends_on:
            if needed in position and position[needed] != index:
                waiting[index] += 1
                dependents.setdefault(position[needed], []).append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered: list[Action] = []
    while ready:
        index = heapq.heappop(ready)
        ordered.append(pending[index])
        for dependent in dependents.get(index, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(ordered) < len(pending):  # the rules above make no cycles; keep everything anyway
        placed = {id(action) for action in ordered}
        ordered += [action for action in pending if id(action) not in placed]
    return tuple(ordered)


def plan_account(
    account: AccountInput, ledger: Ledger, state: AccountState, *, max_delete: int | None = None
) -> AccountPlan:
    """One account's plan: ordered actions and the notices a reviewer must see."""
    builder = _Builder(account, ledger, state)
    claimed: set[str] = set()
    adopted: set[str] = set()
    for spec in account.desired:
        builder.declared(spec)
        claimed.add(spec.name)
        if spec.renamed_from and spec.renamed_from in ledger.trunks:
            claimed.add(spec.renamed_from)
        if state.listed and spec.name in state.listed and spec.name not in ledger.trunks:
            adopted.add(state.listed[spec.name])
    builder.undeclared(claimed)
    builder.unmanaged(adopted)
    builder.routes()
    if not account.desired and ledger.trunks:
        builder.notice(
            NoticeKind.RAIL,
            f"account {account.name} declares no trunks but its ledger tracks "
            f"{len(ledger.trunks)}: apply refuses (an empty checkout must not wipe production) "
            "unless --force",
        )
    for sid, why in sorted(state.unreadable.items()):
        name = ledger.by_sid().get(sid, sid)
        builder.notice(
            NoticeKind.UNREADABLE,
            f"trunk {name} ({sid}) could not be read, so it was not checked: {why}",
            address(account.name, name, Resource.TRUNK),
        )
    if state.not_refreshed:
        builder.notice(
            NoticeKind.NOT_REFRESHED,
            f"{len(state.not_refreshed)} trunk(s) not refreshed (--refresh changed): their "
            "manifests match the last apply, so drift on them was not looked for",
        )
    if account.profile == "minimal":
        builder.notice(
            NoticeKind.PROFILE,
            "profile minimal: trunk names and settings cannot be read, so the alias is compared "
            "with the last applied one and unmanaged trunks are not listed",
        )
    managed = sum(_size(trunk) for trunk in state.trunks.values()) + len(state.missing)
    actions = _order(_dependencies(builder.actions))
    deletions = sum(1 for a in actions if a.kind in (Kind.DELETE, Kind.REPLACE))
    limit = max_delete if max_delete is not None else delete_limit(managed)
    if limit is not None and deletions > limit:
        builder.notice(
            NoticeKind.RAIL,
            f"{deletions} deletions exceed the limit of {limit} ({managed} managed objects): "
            "apply refuses unless --force or a higher --max-delete",
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


def delete_limit(managed: int) -> int | None:
    """DESIGN.md section 5: 30% of managed objects, when there are 10 or more."""
    return int(managed * DELETE_SHARE) if managed >= DELETE_FLOOR else None


def _size(trunk: LiveTrunk) -> int:
    children_count = len(trunk.numbers) + len(trunk.ips) + len(trunk.destinations)
    return 1 + children_count + len(trunk.credentials) + (1 if trunk.alias else 0)


def new_numbers(plan: AccountPlan) -> list[str]:
    """DIDs the plan would map: the only ones worth a trunk-maps lookup."""
    return sorted({a.key for a in plan.actions if a.operation == "map_number"})


def did_notices(plan: AccountPlan, holders: Mapping[str, str], ledger: Ledger) -> AccountPlan:
    """Warn about DIDs the plan maps that sit on a trunk the plan does not free them from."""
    names = ledger.by_sid()
    unmapped = {a.key for a in plan.actions if a.operation == "unmap_number"}
    emptied = {  # trunks this plan deletes or rebuilds: their DIDs are freed first
        a.target["trunk_sid"]
        for a in plan.actions
        if a.operation in ("delete_trunk", "replace_trunk") and "trunk_sid" in a.target
    }
    notices = list(plan.notices)
    for action in plan.actions:
        if action.operation != "map_number" or action.key in unmapped:
            continue
        holder = holders.get(action.key)
        if holder is None or holder == action.target.get("trunk_sid") or holder in emptied:
            continue
        owner = f"trunk {names[holder]}" if holder in names else f"unmanaged trunk {holder}"
        message = (
            f"DID {action.key} is mapped on {owner}: mapping it here fails until it is "
            "unmapped there"
        )
        notices.append(Notice(NoticeKind.DID_ELSEWHERE, plan.account, message, action.address))
    return replace(plan, notices=tuple(notices))


def route_fingerprint(route: RouteSpec) -> str:
    return sha256_of(route.model_dump(mode="json"))


def route_summary(route: RouteSpec) -> dict[str, Any]:
    return {
        "default_trunk": route.default.trunk,
        "rules": len(route.rules),
        "handoff": route.handoff is not None,
    }
