"""``reconciler check``: do the trunks' destinations answer SIP.

Called by the CLI, and by ``pipeline.tracing`` for ``trace --probe``. It takes the
chosen trunks' destination URIs from the manifests and probes them all
(``checking.probe``), concurrently within a bound, in the order Exotel tries them. Each
destination knows its trunk's partner platform (``manifests.seam``), so a LiveKit end is
judged as LiveKit answers. It sends nothing to Exotel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler import __version__
from reconciler.checking.probe import probe
from reconciler.checking.report import TrunkReport, exotel_order
from reconciler.checking.results import Call, Destination, Partner, Result, Settings
from reconciler.checking.wire import context
from reconciler.errors import ConfigError, ManifestError
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.problems import did_you_mean
from reconciler.manifests.seam import ends
from reconciler.pipeline.accounts import select
from reconciler.routing import decide
from reconciler.routing.snapshot import build

USER_AGENT = f"exotel-reconciler/{__version__} (reconciler check)"
DEFAULT_CONCURRENCY = 1000
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckOptions:
    timeout: float = DEFAULT_TIMEOUT
    resolve: Mapping[tuple[str, int], str] = field(default_factory=dict)
    ca: str | None = None
    invite: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    trunks: frozenset[str] = frozenset()
    now: datetime | None = None  # the clock for certificates' days left and routes (tests)
    on_start: Callable[[int], None] | None = None  # progress: how many probes there are
    on_result: Callable[[Result], None] | None = None  # progress: one of them is done

    def settings(self) -> Settings:
        return Settings(
            timeout=self.timeout,
            resolve=self.resolve,
            ca=self.ca,
            user_agent=USER_AGENT,
            now=self.now,
        )


def parse_resolve(items: Sequence[str]) -> dict[tuple[str, int], str]:
    """curl's ``--resolve HOST:PORT:ADDRESS`` (an IPv6 address in brackets or not)."""
    found: dict[tuple[str, int], str] = {}
    for item in items:
        host, _, rest = item.partition(":")
        port, _, address = rest.partition(":")
        address = address.strip("[]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or not address:
            raise ConfigError(
                f"--resolve {item!r}: write HOST:PORT:ADDRESS, like sbc1.example.com:5061:127.0.0.1"
            )
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(
                f"--resolve {item!r}: {address!r} is not an IP address (one address, as "
                "127.0.0.1 or [::1])"
            ) from None
        key = (host.lower(), int(port))
        if key in found:
            raise ConfigError(f"--resolve names {host}:{port} twice: give one address for it")
        found[key] = address
    return found


def unused_resolves(
    manifests: Manifests, *, accounts: Sequence[str], options: CheckOptions
) -> list[str]:
    """The ``--resolve`` entries no chosen destination uses (a typo, most likely)."""
    used = {
        (d.host, d.port)
        for account, spec in _chosen(manifests, accounts, options.trunks)
        for d in destinations(account.name, spec)
    }
    return [f"{host}:{port}" for host, port in options.resolve if (host, port) not in used]


def destinations(
    account: str, spec: TrunkSpec, partner: Partner | None = None
) -> list[Destination]:
    """A trunk's destination URIs in Exotel's order, each with its share of its priority
    (and the trunk's partner, when the manifests name one)."""
    totals: dict[int, int] = {}
    counts: dict[int, int] = {}
    for item in spec.destination_uris:
        totals[item.priority] = totals.get(item.priority, 0) + item.weight
        counts[item.priority] = counts.get(item.priority, 0) + 1
    # Weights mirror DNS SRV's: all zero at a priority shares evenly (RFC 2782, "Weight").
    found = [
        Destination(
            account=account,
            trunk=spec.name,
            uri=item.uri,
            priority=item.priority,
            weight=item.weight,
            share=(
                item.weight / totals[item.priority]
                if totals[item.priority]
                else 1 / counts[item.priority]
            ),
            partner=partner,
        )
        for item in spec.destination_uris
    ]
    return exotel_order(found)


def _chosen(
    manifests: Manifests, accounts: Sequence[str], trunks: frozenset[str]
) -> list[tuple[NamedAccount, TrunkSpec]]:
    if manifests.errors:
        raise ManifestError(manifests.errors)
    names = {account.name for account in select(manifests, accounts)}
    chosen = [
        (manifests.accounts[t.spec.account], t.spec)
        for t in manifests.trunks
        if t.spec.account in names and (not trunks or t.spec.name in trunks)
    ]
    unknown = sorted(trunks - {spec.name for _, spec in chosen})
    if unknown:
        trunk_names = sorted(t.spec.name for t in manifests.trunks)
        hint = did_you_mean(unknown[0], trunk_names)
        declared = ", ".join(trunk_names) or "none"
        raise ConfigError(f"no trunk named {', '.join(unknown)}{hint} (declared: {declared})")
    return sorted(chosen, key=lambda pair: (pair[0].name, pair[1].name))


def partners(manifests: Manifests) -> dict[tuple[str, str], Partner]:
    """Each trunk's partner, by (account, trunk), as the seam derives its end."""
    found = ends(
        manifests.accounts,
        manifests.partners,
        [t.spec for t in manifests.trunks],
        [r.spec for r in manifests.routes],
    )
    return {
        (end.account, end.trunk): Partner(
            name=end.partner,
            platform=end.platform,
            realm=end.realm,
            exotel_addresses=end.exotel_addresses,
            agent=end.dispatch.agent,
        )
        for end in found
    }


def _call(
    account: str,
    spec: TrunkSpec,
    snapshot: decide.Snapshot,
    now: datetime,
) -> Call | None:
    """What ``--invite`` sends: the trunk's first DID, with the trunk's SID as Exotel's
    ``X-Exotel-TrunkSid`` and the custom headers its route would add now."""
    if not spec.phone_numbers:
        return None
    did = spec.phone_numbers[0].number
    sid = snapshot.sids.get((account, spec.name))
    headers: list[tuple[str, str]] = []
    if sid:
        headers.append(("X-Exotel-TrunkSid", sid))
    route = decide.handoff_route(snapshot, {"CallTo": did})
    if route is not None:
        target = next((r for r in route.rules if not decide.unmet(r.when, None, now)), None)
        chosen = target or route.default
        if chosen.trunk == spec.name:
            headers += list(chosen.custom_params.items())
    return Call(did, tuple(headers))


async def check(
    manifests: Manifests, *, accounts: Sequence[str], options: CheckOptions
) -> list[TrunkReport]:
    """Probe the destinations of the chosen trunks; a report per trunk, in name order."""
    chosen = _chosen(manifests, accounts, options.trunks)
    snapshot = build(manifests).snapshot
    now = options.now or datetime.now(UTC)
    settings = options.settings()
    try:
        verified = context(options.ca, verify=True)
    except ValueError as exc:
        raise ConfigError(f"--ca: {exc}") from exc
    bound = asyncio.Semaphore(max(1, options.concurrency))

    async def one(destination: Destination, call: Call | None) -> Result:
        async with bound:
            result = await probe(destination, settings, call=call, verified=verified)
        if options.on_result is not None:
            options.on_result(result)
        return result

    # One probe per distinct destination (test call and partner): trunks often share
    # SBCs, and an SBC asked the same question many times at once may take it for a flood.
    probes: dict[tuple[str, Partner | None, Call | None], asyncio.Task[Result]] = {}
    plans = []
    by_trunk = partners(manifests)
    for account, spec in chosen:
        call = _call(account.name, spec, snapshot, now) if options.invite else None
        partner = by_trunk.get((account.name, spec.name))
        targets = destinations(account.name, spec, partner)
        for destination in targets:
            key = (destination.uri, partner, call)
            if key not in probes:
                probes[key] = asyncio.create_task(one(destination, call))
        plans.append((account, spec, partner, call, targets))
    if options.on_start is not None:
        options.on_start(len(probes))
    await asyncio.gather(*probes.values())
    reports = []
    for account, spec, partner, call, targets in plans:
        results = [_as_of(probes[(d.uri, partner, call)].result(), d) for d in targets]
        if options.invite and spec.destination_uris and not spec.phone_numbers:
            for result in results:
                result.note("--invite: the trunk has no DID to call")
        sid = snapshot.sids.get((account.name, spec.name))
        reports.append(TrunkReport(account.name, spec.name, sid, tuple(results), partner))
    return reports


def _as_of(result: Result, destination: Destination) -> Result:
    """A shared probe's result, as one trunk's destination (its priority and weight)."""
    if result.destination == destination:
        return result
    return dataclasses.replace(result, destination=destination, findings=list(result.findings))
