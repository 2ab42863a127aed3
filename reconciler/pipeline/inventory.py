"""What the ledgers say the reconciler manages: ``reconciler state list``, ``show`` and
``graph``.

Called by the CLI. Reads the manifests and the ledgers only (no API call): the trunk SIDs
every Connect applet needs (``sip:<SID>``), and for one trunk what was last applied. The
ledger keeps SIDs, ``protect``, the alias and password versions; the values of DIDs, IPs
and destinations come from the manifests, which are what was applied when the trunk's
fingerprint still matches the ledger's (otherwise they are changes not yet applied, and
``show`` says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler import diagram
from reconciler.errors import ConfigError, ManifestError
from reconciler.live import ledger as ledgers
from reconciler.live.pairing import Match, pair
from reconciler.live.state import fingerprint
from reconciler.manifests.load import Manifests
from reconciler.manifests.problems import did_you_mean
from reconciler.manifests.seam import partner_name
from reconciler.pipeline.accounts import select
from reconciler.routing.snapshot import build


@dataclass(frozen=True)
class Row:
    account: str
    trunk: str
    sid: str
    protect: bool
    status: str  # applied | changed since the last apply | no longer declared | ...

    def document(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "trunk": self.trunk,
            "sid": self.sid,
            "protect": self.protect,
            "status": self.status,
        }


def rows(manifests: Manifests, *, accounts: Sequence[str]) -> list[Row]:
    if manifests.errors:
        raise ManifestError(manifests.errors)
    found = []
    for account in select(manifests, accounts):
        path = ledgers.ledger_path(manifests.root, account)
        ledger = ledgers.read(path, account=account.name, account_sid=account.spec.sid)
        desired = [t.spec for t in manifests.trunks if t.spec.account == account.name]
        pairing = pair(desired, ledger)
        for match in pairing:
            entry = match.entry
            if entry is None:
                state = "pending create" if match.match is Match.PENDING else "not yet applied"
                found.append(Row(account.name, match.spec.name, "", match.spec.protect, state))
                continue
            state = (
                "applied"
                if entry.fingerprint == fingerprint(match.spec)
                else "changed since the last apply"
            )
            if match.renaming:
                state = f"renamed from {match.ledger_name}, not yet applied"
            found.append(Row(account.name, match.spec.name, entry.sid, entry.protect, state))
        for name, entry in pairing.undeclared.items():
            found.append(Row(account.name, name, entry.sid, entry.protect, "no longer declared"))
    return sorted(found, key=lambda row: (row.account, row.trunk))


def show(manifests: Manifests, trunk: str, *, accounts: Sequence[str]) -> dict[str, Any]:
    every = rows(manifests, accounts=accounts)
    matches = [row for row in every if row.trunk == trunk]
    if not matches:
        hint = did_you_mean(trunk, {row.trunk for row in every})
        raise ConfigError(f"no trunk named {trunk} in the manifests or the ledgers{hint}")
    if len(matches) > 1:
        raise ConfigError(f"trunk {trunk} is in several accounts: name one with --account")
    [row] = matches
    account = manifests.accounts[row.account]
    path = ledgers.ledger_path(manifests.root, account)
    ledger = ledgers.read(path, account=row.account, account_sid=account.spec.sid)
    entry = ledger.trunks.get(trunk)
    spec = next(
        (
            t.spec
            for t in manifests.trunks
            if t.spec.account == row.account and t.spec.name == trunk
        ),
        None,
    )
    document: dict[str, Any] = {
        **row.document(),
        "dial": f"sip:{row.sid}" if row.sid else None,
        "alias": entry.alias if entry else None,
        "credentials": dict(entry.credentials) if entry else {},
        # What it owns on its partner platform: "<kind>" -> {partner, id}
        "partner_objects": {
            key.split("/")[2]: {"partner": held.partner, "id": held.id}
            for key, held in sorted(ledger.partner_objects.items())
            if key.split("/")[0] == trunk
        },
    }
    if spec is not None:
        document["partner"] = partner_name(spec, account)
        document |= {
            "domain_name": spec.domain_name,
            "phone_numbers": [{"number": n.number, "mode": n.mode} for n in spec.phone_numbers],
            "whitelisted_ips": list(spec.whitelisted_ips),
            "destination_uris": [
                {"uri": d.uri, "priority": d.priority, "weight": d.weight}
                for d in spec.destination_uris
            ],
        }
    return document


def graph(manifests: Manifests, *, accounts: Sequence[str]) -> str:
    """``reconciler graph``: the declared topology as a Mermaid flowchart, with the SIDs
    the ledgers know (a trunk not yet applied shows without one)."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    names = {account.name for account in select(manifests, accounts)}
    snapshot = build(manifests).snapshot
    trunks = [t.spec for t in manifests.trunks if t.spec.account in names]
    routes = [r.spec for r in manifests.routes if r.spec.account in names]
    return diagram.topology(trunks, routes, snapshot.sids)
