"""Plans as data: the vocabulary (resources, kinds, operations, statuses), actions,
notices, and the per-account and whole plan, with their checksum.

Built by ``plan.build``; rendered by ``render``; executed by ``apply``. Pure, frozen records
with an enum kind, an address, before/after and a reason (as octoDNS's ``Change`` and
kopf's diff items are): no I/O methods on them. Secrets never enter them: a credential's
password shows as ``(sensitive)``; only its ``password_version`` is data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.live.state import sha256_of

FORMAT_VERSION = 1


class Resource(StrEnum):
    """What an action is about: a trunk, one of its children (``plan.kinds``), or a route."""

    TRUNK = "trunk"
    PHONE_NUMBER = "phone_number"
    WHITELISTED_IP = "whitelisted_ip"
    DESTINATION_URI = "destination_uri"
    ALIAS = "alias"
    CREDENTIAL = "credential"
    ROUTE = "route"  # served by reconciler serve; recorded, never sent to Exotel
    # The partner end on LiveKit (plan.livekit): sent to LiveKit's API, never to Exotel.
    LIVEKIT_INBOUND_TRUNK = "livekit_inbound_trunk"
    LIVEKIT_OUTBOUND_TRUNK = "livekit_outbound_trunk"
    LIVEKIT_DISPATCH_RULE = "livekit_dispatch_rule"


class Kind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    MANUAL = "manual"


SYMBOL = {
    Kind.CREATE: "+",
    Kind.UPDATE: "~",
    Kind.DELETE: "-",
    Kind.REPLACE: "-/+",
    Kind.MANUAL: "!",
}


class Operation(StrEnum):
    """What apply does for an action (or, for a manual step, what a person must do).
    The values are the JSON plan's ``operation`` strings, covered by its checksum."""

    CREATE_TRUNK = "create_trunk"
    ADOPT_TRUNK = "adopt_trunk"  # recorded in the ledger, no API call
    RENAME_TRUNK = "rename_trunk"
    REPLACE_TRUNK = "replace_trunk"
    DELETE_TRUNK = "delete_trunk"
    CHANGE_DOMAIN = "change_domain"  # the API cannot: always a manual step
    IMPORT_PENDING = "import_pending"  # a create that may have landed unseen: manual
    MAP_NUMBER = "map_number"
    SET_MODE = "set_mode"
    UNMAP_NUMBER = "unmap_number"
    ADD_IP = "add_ip"
    DELETE_IP = "delete_ip"
    ADD_DESTINATION = "add_destination"
    UPDATE_DESTINATION = "update_destination"
    DELETE_DESTINATION = "delete_destination"
    SET_ALIAS = "set_alias"
    DELETE_ALIAS = "delete_alias"
    ADD_CREDENTIAL = "add_credential"
    UPDATE_CREDENTIAL = "update_credential"
    REPLACE_CREDENTIAL = "replace_credential"  # delete and re-create (profile minimal)
    DELETE_CREDENTIAL = "delete_credential"
    RECORD_ROUTE = "record_route"  # routes are served by reconciler serve: ledger only
    RECORD_PROTECT = "record_protect"  # protect lives in the ledger: no API call
    LIVEKIT_CREATE = "livekit_create"  # a trunk's LiveKit end (plan.livekit)
    LIVEKIT_ADOPT = "livekit_adopt"  # one carrying the trunk's mark, not in the ledger
    LIVEKIT_UPDATE = "livekit_update"
    LIVEKIT_DELETE = "livekit_delete"


class Status(StrEnum):
    """What became of an action during an apply."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency did not succeed
    MANUAL = "manual"  # a person must do it; reported until done


class Origin(StrEnum):
    MANIFEST = "manifest"
    DRIFT = "drift"


@dataclass(frozen=True, kw_only=True)
class Action:
    """One step of a plan. ``operation`` names what apply does (what a person does, for
    a manual step); ``target`` the API ids."""

    address: str
    kind: Kind
    resource: Resource
    operation: Operation
    account: str
    trunk: str
    key: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str
    origin: Origin
    depends_on: tuple[str, ...] = ()
    target: Mapping[str, str] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return SYMBOL[self.kind]

    def canonical(self) -> dict[str, Any]:
        """What the checksum covers: everything that changes what apply would do."""
        return {
            "address": self.address,
            "kind": str(self.kind),
            "operation": str(self.operation),
            "before": self.before,
            "after": self.after,
            "depends_on": list(self.depends_on),
            "target": dict(self.target),
        }

    def document(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": str(self.kind),
            "symbol": self.symbol,
            "resource": str(self.resource),
            "operation": str(self.operation),
            "account": self.account,
            "trunk": self.trunk,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "origin": str(self.origin),
            "depends_on": list(self.depends_on),
            "target": dict(self.target),
        }


CANONICAL_KEYS = ("address", "kind", "operation", "before", "after", "depends_on", "target")


def checksum(canonical_actions: list[dict[str, Any]]) -> str:
    """The digest reviewers approve: over what each action would do, in order."""
    return sha256_of(canonical_actions)


def saved_canonical(action: Mapping[str, Any]) -> dict[str, Any]:
    """An action of a saved JSON plan, reduced to what its checksum covered."""
    return {key: action.get(key) for key in CANONICAL_KEYS}


class NoticeKind(StrEnum):
    RAIL = "rail"  # apply refuses unless --force
    REPLACEMENT = "replacement"
    UNMANAGED = "unmanaged"
    DID_ELSEWHERE = "did_elsewhere"
    NOT_DECLARED = "not_declared"
    NOT_REFRESHED = "not_refreshed"
    UNREADABLE = "unreadable"
    PROFILE = "profile"
    PASSWORD = "password"  # noqa: S105 (a kind of notice: a value changed, its version did not)
    SEAM = "seam"  # the two ends of a trunk disagree, or another object stands in the way
    ROTATION = "rotation"  # one credential change, carried out across both ends


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    account: str
    message: str
    address: str = ""

    def document(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "account": self.account,
            "address": self.address,
            "message": self.message,
        }


@dataclass(frozen=True)
class AccountPlan:
    account: str
    sid: str
    profile: str
    actions: tuple[Action, ...]
    notices: tuple[Notice, ...]
    managed: int  # objects under management (trunks and children), for the delete rail
    refreshed: int  # trunks read from the API
    not_refreshed: int
    calls: int = 0
    # The trunks this plan looked at, when it did not look at all of them: apply re-reads
    # exactly these for a saved plan, so drift elsewhere is drift's business.
    scope: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Plan:
    accounts: tuple[AccountPlan, ...]

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(action for account in self.accounts for action in account.actions)

    @property
    def notices(self) -> tuple[Notice, ...]:
        return tuple(notice for account in self.accounts for notice in account.notices)

    @property
    def rails(self) -> tuple[Notice, ...]:
        return tuple(n for n in self.notices if n.kind is NoticeKind.RAIL)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def counts(self) -> dict[Kind, int]:
        counted = dict.fromkeys(Kind, 0)
        for action in self.actions:
            counted[action.kind] += 1
        return counted

    @property
    def checksum(self) -> str:
        return checksum([action.canonical() for action in self.actions])

    def document(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "checksum": self.checksum,
            "accounts": [
                {
                    "account": a.account,
                    "sid": a.sid,
                    "profile": a.profile,
                    "refreshed": a.refreshed,
                    "not_refreshed": a.not_refreshed,
                    "api_calls": a.calls,
                    **({"scope": list(a.scope)} if a.scope is not None else {}),
                }
                for a in self.accounts
            ],
            "summary": {str(kind): count for kind, count in self.counts().items()},
            "actions": [action.document() for action in self.actions],
            "notices": [notice.document() for notice in self.notices],
        }


@dataclass(frozen=True)
class Outcome:
    """What became of one action during an apply."""

    action: Action
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan  # what was approved and executed
    outcomes: tuple[Outcome, ...]
    remaining: Plan  # what a re-read after executing still finds to do

    @property
    def converged(self) -> bool:
        """Every action succeeded and nothing is left: only then does apply exit 0."""
        done = all(outcome.status is Status.DONE for outcome in self.outcomes)
        return done and not self.remaining.actions
