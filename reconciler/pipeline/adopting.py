"""``reconciler import --livekit``: bring a LiveKit end that already exists under
management.

Called by the CLI. For each declared trunk with a LiveKit partner, finds the inbound
trunk, outbound trunk and dispatch rule it already has on LiveKit (by the metadata
this tool writes, or the name ``exotel-<trunk>``), or takes the ones named with
``--livekit-id ID=TRUNK`` (a team's hand-made trunk), and records their IDs in the
ledger under its lock. Nothing is written to LiveKit and no manifest is written: the
LiveKit end is derived from the trunk. The ledger records no digest and no
password_version for them, so the next plan shows every managed field that differs as
a change from the manifests, and the outbound trunk's password as one to set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import ConfigError
from reconciler.live import ledger as ledgers
from reconciler.live.state import PartnerEntry
from reconciler.livekit.records import LABEL
from reconciler.manifests.load import Manifests
from reconciler.pipeline.accounts import Options, choose
from reconciler.pipeline.planning import read_partners
from reconciler.plan.livekit import ledger_key, owned_by


@dataclass(frozen=True)
class Adopted:
    trunk: str
    partner: str
    what: str  # "inbound trunk", ...
    id: str


def _explicit(pairs: Sequence[str]) -> dict[str, str]:
    """``--livekit-id ID=TRUNK`` -> {ID: TRUNK}."""
    found = {}
    for pair in pairs:
        object_id, equals, trunk = pair.partition("=")
        if not equals or not object_id or not trunk:
            raise ConfigError(f"--livekit-id {pair!r}: write ID=TRUNK, like ST_abc123=blr_bot")
        found[object_id] = trunk
    return found


async def adopt_livekit(
    manifests: Manifests,
    *,
    account: str,
    ids: Sequence[str],
    environ: Mapping[str, str],
    options: Options,
    force: bool,
) -> list[Adopted]:
    [resolved] = choose(manifests, [account], environ, passwords=False)
    ends = {end.trunk: end for end in resolved.declared.ends if end.platform == "livekit"}
    if not ends:
        raise ConfigError(f"account {account} declares no trunk with a LiveKit partner")
    explicit = _explicit(ids)
    for object_id, trunk in explicit.items():
        if trunk not in ends:
            declared = {spec.name for spec in resolved.declared.desired}
            why = "has no LiveKit partner" if trunk in declared else "is not declared"
            raise ConfigError(
                f"--livekit-id {object_id}={trunk}: trunk {trunk} {why} in account {account} "
                f"(trunks with a LiveKit partner: {', '.join(sorted(ends))})"
            )
    with ledgers.Lock.beside(resolved.ledger_path):
        ledger = ledgers.read(resolved.ledger_path, account=account, account_sid=resolved.spec.sid)
        projects = await read_partners(resolved, options)
        owned = {entry.id for entry in ledger.partner_objects.values()}
        adopted: list[Adopted] = []
        for trunk, end in sorted(ends.items()):
            listed = projects.get(end.partner)
            objects = (
                [o for o in listed.values() if o.id not in owned]
                if isinstance(listed, dict)
                else []
            )
            if explicit:  # exactly the objects named, and nothing else
                chosen = {o.kind: o for o in objects if explicit.get(o.id) == trunk}
            else:  # what carries the trunk's mark or name, where the ledger holds nothing
                chosen = {
                    kind: found
                    for kind, found in owned_by(end, objects).items()
                    if force or ledger_key(trunk, end.partner, kind) not in ledger.partner_objects
                }
            for found in chosen.values():
                key = ledger_key(trunk, end.partner, found.kind)
                held = ledger.partner_objects.get(key)
                if held is not None and not force:
                    raise ConfigError(
                        f"trunk {trunk} already owns LiveKit {LABEL[found.kind]} {held.id} on "
                        f"{end.partner}; --force replaces the ledger's record with {found.id}"
                    )
                ledger = ledger.with_partner_object(key, PartnerEntry(end.partner, found.id))
                adopted.append(Adopted(trunk, end.partner, LABEL[found.kind], found.id))
                owned.add(found.id)
        missing = set(explicit) - {item.id for item in adopted}
        if missing:
            raise ConfigError(
                f"--livekit-id: LiveKit lists no unowned object {', '.join(sorted(missing))} "
                "on the trunk's partner; nothing was recorded"
            )
        if adopted:
            ledgers.write(resolved.ledger_path, ledger)
    return adopted
