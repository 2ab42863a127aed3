"""Safety rails: what a plan must not do without ``--force``, shown as notices.

Called by ``plan.build`` for each account. Pure. The plan only warns (``NoticeKind.RAIL``);
``apply`` refuses (exit 3) while a rail holds. As octoDNS's ``MAX_SAFE_DELETE_PCENT``:

* an account whose manifests declare no trunks while its ledger has some (an empty
  checkout must not wipe production);
* more deletions (deletes and replacements) than ``--max-delete``, by default 30% of the
  managed objects when there are at least 10 of them.

Protected trunks are never deleted or replaced at all: ``plan.build`` never plans it.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.exotel.records import LiveTrunk
from reconciler.live.state import AccountState
from reconciler.plan.actions import Action, Kind, Notice, NoticeKind, Resource
from reconciler.plan.kinds import KINDS

DELETE_SHARE = 0.3  # default --max-delete: 30% of managed objects...
DELETE_FLOOR = 10  # ...when there are at least this many


def delete_limit(managed: int) -> int | None:
    return int(managed * DELETE_SHARE) if managed >= DELETE_FLOOR else None


def size(trunk: LiveTrunk) -> int:
    """The trunk and everything on it, as objects under management."""
    return 1 + sum(len(kind.observed(trunk, None)) for kind in KINDS)


def contents(trunk: LiveTrunk) -> list[str]:
    """Everything on a trunk, as a plan names it: what deleting the trunk takes with it."""
    return [kind.label(key) for kind in KINDS for key in sorted(kind.observed(trunk, None))]


def managed(state: AccountState) -> int:
    return sum(size(trunk) for trunk in state.trunks.values()) + len(state.missing)


def empty_checkout(account: str, *, declared: int, tracked: int) -> list[Notice]:
    if declared or not tracked:
        return []
    message = (
        f"account {account} declares no trunks but its ledger tracks {tracked}: apply "
        "refuses (an empty checkout must not wipe production) unless --force"
    )
    return [Notice(NoticeKind.RAIL, account, message)]


def deletions(actions: Sequence[Action], state: AccountState) -> int:
    """Objects the plan deletes: a trunk deleted or rebuilt counts with everything on it."""
    count = 0
    for action in actions:
        if action.kind not in (Kind.DELETE, Kind.REPLACE):
            continue
        trunk = state.trunks.get(action.target.get("trunk_sid", ""))
        whole = action.resource is Resource.TRUNK and trunk is not None
        count += size(trunk) if whole and trunk is not None else 1
    return count


def too_many_deletions(
    account: str,
    actions: Sequence[Action],
    state: AccountState,
    *,
    managed_objects: int,
    max_delete: int | None,
) -> list[Notice]:
    deleted = deletions(actions, state)
    limit = max_delete if max_delete is not None else delete_limit(managed_objects)
    if limit is None or deleted <= limit:
        return []
    message = (
        f"{deleted} deletions (a trunk counts with everything on it) exceed the limit of "
        f"{limit} ({managed_objects} managed objects): apply refuses unless --force or a "
        "higher --max-delete"
    )
    return [Notice(NoticeKind.RAIL, account, message)]
