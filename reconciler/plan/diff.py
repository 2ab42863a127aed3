"""Desired x live -> changes: keyed set arithmetic, then field by field.

Called by ``plan.trunks`` for each declared trunk paired with live state. Pure: no I/O, no API
knowledge beyond what the state holds. Identity is kept apart from content (as in
octoDNS): every child has a key (the DID, the ``ip/mask``, the destination URI, the
credential's username), keys are paired with set operations, and only paired items
are compared field by field. What each kind's key and fields are is ``plan.kinds``'
business. A change says what it is, not what to call: turning changes into API
operations, manual steps or replacements is ``plan.trunks``' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.exotel.records import LiveTrunk
from reconciler.live.state import TrunkEntry, digest
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import Resource
from reconciler.plan.kinds import KINDS, ChildKind, Fields, Op


@dataclass(frozen=True)
class Change:
    resource: Resource
    key: str
    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    fields: tuple[str, ...] = ()  # what differs, for MODIFY
    ids: Mapping[str, str] = field(default_factory=dict)  # the API's ids, for updates/deletes


def _pair(
    kind: ChildKind, spec: TrunkSpec | None, live: LiveTrunk | None, entry: TrunkEntry | None
) -> list[Change]:
    desired = kind.desired(spec) if spec is not None else {}
    observed = kind.observed(live, entry) if live is not None else {}
    resource, changes = kind.resource, []
    for key in desired.keys() - observed.keys():
        changes.append(Change(resource, key, Op.ADD, None, desired[key]))
    for key in observed.keys() - desired.keys():
        have = observed[key]
        changes.append(Change(resource, key, Op.REMOVE, have.fields, None, ids=_id(have.id)))
    for key in desired.keys() & observed.keys():
        have, after = observed[key], desired[key]
        differ = tuple(name for name in after if have.fields.get(name) != after[name])
        if differ:
            changes.append(
                Change(resource, key, Op.MODIFY, have.fields, after, differ, _id(have.id))
            )
    return sorted(changes, key=lambda change: change.key)


def _id(found: str | None) -> dict[str, str]:
    return {"id": found} if found is not None else {}


def desired_children(spec: TrunkSpec) -> dict[Resource, dict[str, Fields]]:
    """The trunk's children as the plan shows them: key -> fields (no secret values)."""
    return {kind.resource: kind.desired(spec) for kind in KINDS}


def parts(spec: TrunkSpec) -> dict[str, str]:
    """``resource:key`` -> digest of each desired child (no secret: passwords are
    references, and stand as a marker)."""
    return {
        f"{resource}:{key}": digest(fields)
        for resource, wanted in desired_children(spec).items()
        for key, fields in wanted.items()
    }


def children(
    spec: TrunkSpec | None, live: LiveTrunk | None, entry: TrunkEntry | None
) -> list[Change]:
    """Every child change that turns ``live`` into ``spec`` (either may be absent)."""
    return [change for kind in KINDS for change in _pair(kind, spec, live, entry)]


def trunk_fields(spec: TrunkSpec, live: LiveTrunk) -> tuple[str, ...]:
    """Which of the trunk's own fields differ (only what the profile could read)."""
    differ = []
    if live.name is not None and live.name != spec.name:
        differ.append("name")
    if live.domain_name is not None and live.domain_name != spec.domain_name:
        differ.append("domain_name")
    if live.nso_code is not None and live.nso_code != spec.nso_code:
        differ.append("nso_code")
    return tuple(differ)
