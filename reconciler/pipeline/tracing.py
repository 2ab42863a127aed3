"""``reconciler trace``: where an inbound call to a DID goes, and why.

Called by the CLI. Explains one call from the manifests, the ledgers, the routes
(``routing.decide``, exactly as ``serve`` would answer) and, when the account's API key
and token are set, live state (at most two GETs: who holds the DID, and its mode). With
``--probe`` it checks the destinations the call would reach (``pipeline.checking``).
Changes nothing anywhere. Returns a JSON-ready document that ``checking.report``
renders as text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.checking.results import Result
from reconciler.errors import ApiError, ConfigError, ManifestError
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.routes import RouteSpec
from reconciler.manifests.windows import IST
from reconciler.pipeline.accounts import Options, choose, client_for
from reconciler.pipeline.checking import CheckOptions, check, destinations
from reconciler.routing import decide
from reconciler.routing.snapshot import build


@dataclass(frozen=True)
class Question:
    """The call to explain."""

    did: str
    caller: str | None = None
    at: datetime | None = None
    probe: bool = False
    live: bool = True


async def trace(
    manifests: Manifests,
    question: Question,
    *,
    environ: Mapping[str, str],
    api: Options,
    options: CheckOptions,
) -> dict[str, Any]:
    """Where a call goes, step by step; ``ConfigError`` when nothing says."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    did = decide.number(question.did)
    if did is None:
        raise ConfigError(
            f"{question.did!r} is not a phone number: write it in E.164, like +918040264208"
        )
    caller = decide.number(question.caller) if question.caller else None
    if question.caller and caller is None:
        raise ConfigError(f"--from {question.caller!r} is not a phone number: write it in E.164")
    now = question.at or datetime.now(UTC)
    snapshot = build(manifests).snapshot
    local = now.astimezone(IST)
    document: dict[str, Any] = {
        "format_version": 1,
        "did": did,
        "caller": caller,
        "at": local.isoformat(timespec="minutes"),
        "weekday": local.strftime("%a").lower(),
        "declared": None,
        "live": None,
        "mode": None,
        "connect": None,
        "handoff": None,
        "trunk": None,
        "destinations": [],
        "notes": [],
        "drift": False,  # live state differs from the manifests: the call goes elsewhere
    }
    trunk = _declared(document, manifests, snapshot, did)
    if trunk is not None and question.live:
        account = manifests.accounts[trunk.account]
        sid = document["declared"]["sid"]
        document["live"] = await _live(manifests, account, (did, sid), environ, api)
        trunk = _follow_live(document, manifests, snapshot, trunk)
    query = {"CallTo": did, **({"CallFrom": caller} if caller else {})}
    route = decide.handoff_route(snapshot, query)
    if route is not None:
        trunk = _routed(document, manifests, snapshot, route, query=query, now=now) or trunk
    elif document["mode"] == "flow":
        document["notes"].append(
            "flow mode, but no route in the manifests: the Exotel flow's own Connect applet "
            "decides where the call goes"
        )
    if document["declared"] is None and route is None:
        raise ConfigError(
            f"{did} is not declared on any trunk and no route answers for it: nothing in the "
            "manifests says where its calls go"
        )
    if trunk is not None:
        await _destinations(document, manifests, trunk, question.probe, options)
    return document


def _declared(
    document: dict[str, Any], manifests: Manifests, snapshot: decide.Snapshot, did: str
) -> TrunkSpec | None:
    """The trunk that declares the DID, with its SID from the ledger and the DID's mode."""
    for declared in manifests.trunks:
        spec = declared.spec
        for number in spec.phone_numbers:
            if number.number != did:
                continue
            sid = snapshot.sids.get((spec.account, spec.name))
            document["declared"] = {
                "account": spec.account,
                "trunk": spec.name,
                "sid": sid,
                "mode": number.mode,
            }
            document["mode"] = number.mode
            if sid is None:
                document["notes"].append(f"trunk {spec.name} is not in the ledger yet: apply first")
            return spec
    return None


def _routed(
    document: dict[str, Any],
    manifests: Manifests,
    snapshot: decide.Snapshot,
    route: RouteSpec,
    *,
    query: Mapping[str, str],
    now: datetime,
) -> TrunkSpec | None:
    """The Dynamic URL's decision (which rule, and why the earlier ones did not match)
    and the handoff's; the trunk the call reaches when it passes through a flow."""
    caller = query.get("CallFrom")
    decision = decide.connect(snapshot, query, now)
    tried = []
    target = route.default.trunk
    for index, rule in enumerate(route.rules):
        reasons = decide.unmet(rule.when, caller, now)
        tried.append(
            {"rule": f"rules[{index}]", "trunk": rule.trunk, "matched": not reasons, "why": reasons}
        )
        if not reasons:
            target = rule.trunk
            break
    chosen = decision.rule.partition(":")[0]
    document["connect"] = {
        "route": route.did,
        "tried": tried,
        "chosen": chosen,
        "trunk": target,
        "status": decision.status,
        "answer": decision.body,
    }
    if route.handoff is not None:
        handed = decide.handoff(snapshot, query, now)
        answer = {"asks": handed.agents_url} if handed.agents_url else handed.body
        document["handoff"] = {"status": handed.status, "rule": handed.rule, "answer": answer}
    if document["mode"] == "pstn":
        document["notes"].append(
            "the DID is in pstn mode: calls go straight to its trunk, and the route (the "
            "Dynamic URL) is not asked"
        )
        return None
    return next(
        (
            t.spec
            for t in manifests.trunks
            if t.spec.account == route.account and t.spec.name == target
        ),
        None,
    )


async def _destinations(
    document: dict[str, Any],
    manifests: Manifests,
    trunk: TrunkSpec,
    probe: bool,
    options: CheckOptions,
) -> None:
    document["trunk"] = trunk.name
    targets = destinations(trunk.account, trunk)
    probed: dict[str, Result] = {}
    if probe and targets:
        only = dataclasses.replace(options, trunks=frozenset({trunk.name}), invite=False)
        [report] = await check(manifests, accounts=[trunk.account], options=only)
        probed = {result.destination.uri: result for result in report.results}
    document["destinations"] = [
        {
            "uri": d.uri,
            "priority": d.priority,
            "weight": d.weight,
            "share": round(d.share, 4),
            "probe": probed[d.uri].document() if d.uri in probed else None,
        }
        for d in targets
    ]
    if not targets:
        document["notes"].append(f"trunk {trunk.name} has no destination URIs: inbound calls fail")


async def _live(
    manifests: Manifests,
    account: NamedAccount,
    number: tuple[str, str | None],
    environ: Mapping[str, str],
    options: Options,
) -> dict[str, Any]:
    """Where Exotel says the DID is: ``trunk-maps`` (profile full), else the declared
    trunk's numbers. What cannot be read is said, not raised: trace explains anyway."""
    did, sid = number
    try:
        [resolved] = choose(manifests, [account.name], environ, passwords=False)
    except ManifestError as exc:
        missing = "; ".join(problem.message for problem in exc.problems[:3])
        return {"read": False, "note": f"not read: {missing}"}
    except ConfigError as exc:
        return {"read": False, "note": f"not read: {exc}"}
    document: dict[str, Any] = {"read": True, "holder": None, "mode": None}
    try:
        client = client_for(resolved, options)
        async with client.http:
            holder = await client.holder(did) if account.spec.api == "full" else sid
            if holder is not None:
                mapped = (await client.numbers(holder)).get(did)
                document["mode"] = mapped.mode if mapped is not None else None
                document["holder"] = holder if mapped is not None else None
    except (ApiError, ConfigError) as exc:
        return {"read": False, "note": f"not read: {exc}"}
    return document


def _follow_live(
    document: dict[str, Any], manifests: Manifests, snapshot: decide.Snapshot, declared: TrunkSpec
) -> TrunkSpec | None:
    """Where Exotel really has the DID wins over the manifests: the trunk that holds it
    (when the ledger knows its name) and its mode. Any difference is drift."""
    live, said = document["live"], document["declared"]
    if not live.get("read"):
        return declared
    holder = live["holder"]
    account = declared.account
    names = {sid: name for (owner, name), sid in snapshot.sids.items() if owner == account}
    live["trunk"] = names.get(holder) if holder else None
    notes = document["notes"]
    if holder is None:
        document["drift"] = True
        document["mode"] = None
        notes.append(
            f"live: the DID is on no trunk at Exotel, so its calls fail there (the manifests "
            f"put it on {said['trunk']}): apply, or see drift"
        )
        return None
    if live["mode"] and live["mode"] != said["mode"]:
        document["drift"] = True
        document["mode"] = live["mode"]
        notes.append(f"live: mode {live['mode']}, where the manifests say {said['mode']} (drift)")
    if holder == said["sid"]:
        return declared
    document["drift"] = True
    name = live["trunk"]
    if name is None:
        notes.append(
            f"live: the DID is on {holder}, a trunk the ledger does not know, not on "
            f"{said['trunk']}: the destinations below are unknown"
        )
        return None
    notes.append(f"live: the DID is on {name} ({holder}), not on {said['trunk']}: calls go there")
    return next(
        (t.spec for t in manifests.trunks if t.spec.account == account and t.spec.name == name),
        None,
    )
