"""How ``plan.build`` and ``plan.trunks`` write down actions and notices for one account.

Pure. A :class:`Step` is an action before it has its account and address; ``Steps``
gives it both, and turns a step a person must take into a manual action that keeps its
real operation and says how (``operations.MANUAL_HOW``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.routes import RouteSpec
from reconciler.manifests.seam import End
from reconciler.plan.actions import Action, Kind, Notice, NoticeKind, Operation, Origin, Resource
from reconciler.plan.operations import MANUAL_HOW, NOT_IN_MINIMAL

Fields = Mapping[str, Any] | None


def address(account: str, trunk: str, resource: Resource, key: str = "") -> str:
    if resource is Resource.TRUNK:  # the trunk itself, or a fact the ledger keeps of it
        return f"{account}/{trunk}/{key}" if key else f"{account}/{trunk}"
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
    ends: tuple[End, ...] = ()  # the partner ends of its trunks (manifests.seam)


@dataclass(frozen=True, kw_only=True)
class Step:
    """An action of one trunk, before it has an account and an address."""

    trunk: str
    operation: Operation
    kind: Kind
    reason: str
    resource: Resource = Resource.TRUNK
    key: str = ""
    before: Fields = None
    after: Fields = None
    origin: Origin = Origin.MANIFEST
    depends: tuple[str, ...] = ()
    target: Mapping[str, str] = field(default_factory=dict)


class Steps:
    """One account's actions and notices, in the order they were found."""

    def __init__(self, account: AccountInput) -> None:
        self.account = account
        self.actions: list[Action] = []
        self.notices: list[Notice] = []

    def notice(self, kind: NoticeKind, message: str, where: str = "") -> None:
        self.notices.append(Notice(kind, self.account.name, message, where))

    def add(self, step: Step) -> str:
        """Record the step as an action; its address, for steps that depend on it."""
        where = address(self.account.name, step.trunk, step.resource, step.key)
        self.actions.append(
            Action(
                address=where,
                kind=step.kind,
                resource=step.resource,
                operation=step.operation,
                account=self.account.name,
                trunk=step.trunk,
                key=step.key,
                before=step.before,
                after=step.after,
                reason=step.reason,
                origin=step.origin,
                depends_on=step.depends,
                target=dict(step.target),
            )
        )
        return where

    def manual(self, step: Step, *, how: str | None = None) -> None:
        """The step, for a person to take: what to do (``how``, or the operation's
        usual how-to), and why the API cannot (the profile lacks it)."""
        lacks = step.operation in NOT_IN_MINIMAL and how is None
        profile = f" (profile {self.account.profile} has no API for it)" if lacks else ""
        reason = f"{step.reason}: {how or MANUAL_HOW[step.operation]}{profile}"
        self.add(replace(step, kind=Kind.MANUAL, reason=reason, depends=()))
