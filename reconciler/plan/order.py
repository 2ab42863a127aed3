"""Dependencies between actions, and the order they run in.

Called by ``plan.build`` once per account. Pure. Dependencies come from the API's rules
(docs/architecture.md, plans): an IP destination needs its whitelisted IP first; an IP
is deleted after the destinations that used it; the alias after the DID it names; a
DID moving between trunks is unmapped there before it is mapped here. The order is a
topological sort that always takes the ready action of lowest rank
(``operations.RANK``), so a plan reads in the same order every time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from reconciler.manifests import canonical
from reconciler.plan.actions import Action, Kind, Operation
from reconciler.plan.operations import rank


@dataclass
class _Index:
    """What some actions of one plan need to find, built in one pass."""

    added_ips: dict[tuple[str, str], list[tuple[int, int, str]]] = field(default_factory=dict)
    deleted_destinations: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    mapped: dict[tuple[str, str, str], str] = field(default_factory=dict)
    unmapped: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, action: Action) -> None:
        trunk = (action.account, action.trunk)
        if action.operation is Operation.ADD_IP:
            first, last = canonical.network_range(action.key)
            self.added_ips.setdefault(trunk, []).append((first, last, action.address))
        elif action.operation is Operation.DELETE_DESTINATION:
            self.deleted_destinations.setdefault(trunk, []).append(action.address)
        elif action.operation is Operation.MAP_NUMBER:
            self.mapped[(*trunk, action.key)] = action.address
        elif action.operation is Operation.UNMAP_NUMBER:
            self.unmapped[(action.account, action.key)] = action.address

    def needs(self, action: Action) -> list[str]:
        trunk = (action.account, action.trunk)
        if action.operation is Operation.ADD_DESTINATION:
            host = canonical.destination_ip(action.key)
            if host is None:
                return []
            value = int(host)
            found = self.added_ips.get(trunk, ())
            return [where for low, high, where in found if low <= value <= high]
        if action.operation is Operation.DELETE_IP:
            return self.deleted_destinations.get(trunk, [])
        if action.operation is Operation.SET_ALIAS and action.after:
            alias_map = self.mapped.get((*trunk, str(action.after.get("alias"))))
            return [alias_map] if alias_map else []
        if action.operation is Operation.MAP_NUMBER:
            moved_from = self.unmapped.get((action.account, action.key))
            return [moved_from] if moved_from and moved_from != action.address else []
        return []


def dependencies(actions: list[Action]) -> list[Action]:
    """The actions with the dependencies between children added.

    Only the operations that need one are looked at, each against an index built once
    per plan, so a plan of 100,000 actions stays linear. Manual steps neither wait nor
    are waited for: a person does them, whenever."""
    automatic = [action for action in actions if action.kind is not Kind.MANUAL]
    index = _Index()
    for action in automatic:
        index.add(action)
    result = []
    for action in actions:
        extra = index.needs(action) if action.kind is not Kind.MANUAL else []
        if extra:
            depends = tuple(dict.fromkeys((*action.depends_on, *extra)))
            action = replace(action, depends_on=depends)  # noqa: PLW2901
        result.append(action)
    return result


def order(actions: Iterable[Action]) -> tuple[Action, ...]:
    """Kahn's topological sort over ``depends_on``, always taking the ready action of
    lowest rank, then account, trunk and address: O(n log n)."""
    pending = sorted(actions, key=lambda a: (rank(a), a.account, a.trunk, a.address))
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
