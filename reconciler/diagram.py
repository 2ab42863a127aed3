"""Pictures of trunking as Mermaid flowcharts, which GitHub renders inline in markdown.

Called by ``render.markdown`` (a plan's pull-request comment: what changes) and by the
CLI's ``reconciler graph`` (the whole topology). Pure. One picture language for both:

    DID --> trunk --> destination        a DID mapped on a trunk (pstn: straight there)
    DID -. rules[0] .-> trunk            a flow DID's route: which rule sends it where

Parts a plan adds are green, removed ones red and dashed, changed ones amber; in the
topology everything is plain. Labels are quoted and escaped, so no manifest value can
break out of its node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.routes import RouteSpec
from reconciler.plan.actions import Action, Kind, Plan, Resource

State = Literal["same", "added", "removed", "changed"]
STATE_OF_KIND: Mapping[Kind, State] = {
    Kind.CREATE: "added",
    Kind.DELETE: "removed",
    Kind.UPDATE: "changed",
    Kind.REPLACE: "changed",
    Kind.MANUAL: "changed",
}
CLASSES = (
    "classDef added fill:#dafbe1,stroke:#1a7f37,color:#1a7f37",
    "classDef removed fill:#ffebe9,stroke:#cf222e,color:#cf222e,stroke-dasharray:4 3",
    "classDef changed fill:#fff8c5,stroke:#9a6700,color:#9a6700",
)
LEGEND = "green: added, red: removed, amber: changed"
MAX_NODES = 300  # beyond this GitHub stops rendering; the picture says what it left out


@dataclass
class Picture:
    """Nodes and edges, deduplicated, in the order they were first named."""

    nodes: dict[str, tuple[str, str, State]] = field(default_factory=dict)  # id -> shape, label
    edges: dict[tuple[str, str, str], tuple[str, State]] = field(default_factory=dict)
    ids: dict[tuple[str, ...], str] = field(default_factory=dict)  # what a node is -> its id

    def node(self, key: tuple[str, ...], shape: str, label: str, state: State = "same") -> str:
        """The node for ``key`` (made on first mention; a later mention that says it was
        added, removed or changed wins over one that did not)."""
        ident = self.ids.setdefault(key, f"n{len(self.ids) + 1}")
        known = self.nodes.get(ident)
        if known is None or (known[2] == "same" and state != "same"):
            self.nodes[ident] = (
                shape,
                label if known is None or state != "same" else known[1],
                state,
            )
        return ident

    def edge(self, source: str, target: str, label: str = "", *, style: str = "-->",
             state: State = "same") -> None:  # fmt: skip
        key = (source, target, label)
        if key not in self.edges or state != "same":
            self.edges[key] = (style, state)


def _label(text: str) -> str:
    """A quoted Mermaid label: quotes and markup characters as entities."""
    escaped = (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", "<br/>")
    )
    return f'"{escaped}"'


SHAPES = {"did": ("([", "])"), "trunk": ("[[", "]]"), "destination": ("[", "]")}


def _did(picture: Picture, account: str, number: str, note: str, state: State = "same") -> str:
    label = f"{number}\n{note}" if note else number
    return picture.node((account, "did", number), "did", label, state)


def _trunk(
    picture: Picture, account: str, name: str, sid: str | None, state: State = "same"
) -> str:
    label = f"{name}\n{sid}" if sid else name
    return picture.node((account, "trunk", name), "trunk", label, state)


def _destination(
    picture: Picture, account: str, trunk: str, uri: str, state: State = "same"
) -> str:
    host, _, rest = uri.partition(";transport=")
    return picture.node((account, trunk, "uri", uri), "destination", f"{host}\n{rest}", state)


def _rule_label(route: Mapping[str, Any], index: int) -> str:
    when = route["rules"][index].get("when", {})
    parts = [f"rules[{index}]"]
    if when.get("caller_prefixes"):
        parts.append("from " + ",".join(when["caller_prefixes"]))
    if when.get("hours"):
        parts.append(when["hours"])
    if when.get("weekdays"):
        parts.append(",".join(when["weekdays"]))
    return " ".join(parts)


def _route(picture: Picture, account: str, route: Mapping[str, Any], state: State) -> None:
    """A route's DID to the trunks its rules and default send calls to."""
    did = route["did"]
    source = _did(picture, account, did, "route (Dynamic URL)" if did != "*" else "other DIDs")
    for index, rule in enumerate(route.get("rules", [])):
        target = _trunk(picture, account, rule["trunk"], None)
        picture.edge(source, target, _rule_label(route, index), style="-.->", state=state)
    target = _trunk(picture, account, route["default"]["trunk"], None)
    picture.edge(source, target, "default", style="-.->", state=state)
    if route.get("handoff"):
        hours = route["handoff"].get("hours") or "any time"
        agents = picture.node(
            (account, "handoff", did), "did", f"handoff to agents\n{hours}", state
        )
        picture.edge(source, agents, "after the bot", style="-.->", state=state)


def topology(
    trunks: Sequence[TrunkSpec],
    routes: Sequence[RouteSpec],
    sids: Mapping[tuple[str, str], str],
) -> str:
    """Everything the manifests declare: DIDs, trunks (with their SIDs), destinations
    (priority and weight), and the routes' rules."""
    picture = Picture()
    for spec in trunks:
        trunk = _trunk(picture, spec.account, spec.name, sids.get((spec.account, spec.name)))
        for number in spec.phone_numbers:
            picture.edge(_did(picture, spec.account, number.number, number.mode), trunk)
        for item in spec.destination_uris:
            target = _destination(picture, spec.account, spec.name, item.uri)
            picture.edge(trunk, target, f"p{item.priority} w{item.weight}")
    for route in routes:
        _route(picture, route.account, route.model_dump(mode="json"), "same")
    return _flowchart(picture, legend=False)


def changes(plan: Plan) -> str:
    """What a plan changes: each trunk it touches with the DIDs, destinations and routes
    it adds, removes or changes ("" when it changes none of them)."""
    picture = Picture()
    for account in plan.accounts:
        for action in account.actions:
            _action(picture, account.account, action)
    if not picture.nodes:
        return ""
    return _flowchart(picture, legend=True)


def _action(picture: Picture, account: str, action: Action) -> None:
    state = STATE_OF_KIND[action.kind]
    fields = dict(action.after or action.before or {})
    if action.resource is Resource.ROUTE:
        route = (action.after or {}).get("route") or (action.before or {}).get("route")
        if isinstance(route, Mapping):
            _route(picture, account, route, state)
        return
    if action.resource is Resource.TRUNK:
        sid = action.target.get("trunk_sid")
        _trunk(picture, account, action.trunk, sid, state)
        return
    if action.resource is Resource.PHONE_NUMBER:
        trunk = _trunk(picture, account, action.trunk, None)
        mode = str(fields.get("mode", ""))
        picture.edge(_did(picture, account, action.key, mode, state), trunk, state=state)
    elif action.resource is Resource.DESTINATION_URI:
        trunk = _trunk(picture, account, action.trunk, None)
        label = f"p{fields.get('priority', 0)} w{fields.get('weight', 1)}"
        target = _destination(picture, account, action.trunk, action.key, state)
        picture.edge(trunk, target, label, state=state)


def _flowchart(picture: Picture, *, legend: bool) -> str:
    lines = ["flowchart LR", *(f"  {line}" for line in CLASSES)]
    shown = list(picture.nodes.items())[:MAX_NODES]
    kept = {ident for ident, _ in shown}
    for ident, (shape, label, _) in shown:
        opening, closing = SHAPES[shape]
        lines.append(f"  {ident}{opening}{_label(label)}{closing}")
    styled: list[tuple[int, State]] = []
    count = 0
    for (source, target, label), (style, state) in picture.edges.items():
        if source not in kept or target not in kept:
            continue
        arrow = f"{style}|{_label(label)}|" if label else style
        lines.append(f"  {source} {arrow} {target}")
        if state != "same":
            styled.append((count, state))
        count += 1
    for state in ("added", "removed", "changed"):
        members = [ident for ident, (_, _, s) in shown if s == state]
        if members:
            lines.append(f"  class {','.join(members)} {state}")
    colours = {"added": "#1a7f37", "removed": "#cf222e", "changed": "#9a6700"}
    for index, state in styled:
        lines.append(f"  linkStyle {index} stroke:{colours[state]}")
    if len(picture.nodes) > MAX_NODES:
        lines.append(f"  %% {len(picture.nodes) - MAX_NODES} more parts left out")
    return "\n".join(lines) + "\n"


def fenced(diagram: str, *, title: str = "") -> str:
    """A diagram as a markdown code block GitHub renders, with a line above it."""
    if not diagram:
        return ""
    above = f"{title}\n\n" if title else ""
    return f"{above}```mermaid\n{diagram}```\n"
