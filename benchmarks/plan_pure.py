"""Pure diff + plan of 10,000 trunks from in-memory models: target under 2 seconds.

Builds desired specs and matching live state in memory (no files, no HTTP), changes a
tenth of the trunks so the plan has work to show, then times ``plan_account`` alone:
pairing, child diffs, capability checks, dependencies, ordering, rails.

    python benchmarks/plan_pure.py [--trunks 10000]
"""

from __future__ import annotations

import argparse
import time

from reconciler.exotel.records import LiveCredential, LiveDestination, LiveNumber, LiveTrunk
from reconciler.live.state import AccountState, Ledger, TrunkEntry, fingerprint
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.build import AccountInput, plan_account
from reconciler.plan.diff import parts

TARGET_SECONDS = 2.0


def spec(index: int) -> TrunkSpec:
    a, b = divmod(index, 200)
    return TrunkSpec.model_validate(
        {
            "name": f"t{index:05d}",
            "account": "prod",
            "domain_name": "ameyo5m.pstn.exotel.com",
            "phone_numbers": [
                {"number": f"+9180{index:07d}1", "mode": "flow"},
                f"+9180{index:07d}2",
                f"+9180{index:07d}3",
            ],
            "whitelisted_ips": [f"44.{a + 1}.{b}.1", f"13.{a + 1}.{b}.0/24"],
            "destination_uris": [
                f"44.{a + 1}.{b}.1:5061;transport=tls",
                {"uri": f"sbc{index}.example.com:5061;transport=tls", "priority": 1},
            ],
            "alias": f"+9180{index:07d}1",
            "credentials": [{"username": f"u{index}", "password": "${SIP_PASSWORD}"}],
        }
    )


def live(trunk: TrunkSpec, sid: str, *, drifted: bool) -> LiveTrunk:
    numbers = {
        n.number: LiveNumber(f"{sid}n{i}", n.mode) for i, n in enumerate(trunk.phone_numbers)
    }
    if drifted:  # a DID set to pstn by hand
        first = trunk.phone_numbers[0].number
        numbers[first] = LiveNumber(numbers[first].id, "pstn")
    return LiveTrunk(
        sid,
        trunk.name,
        "ANY-ANY",
        trunk.domain_name,
        numbers=numbers,
        ips={ip: f"{sid}i{i}" for i, ip in enumerate(trunk.whitelisted_ips)},
        destinations={
            d.uri: LiveDestination(f"{sid}d{i}", d.priority, d.weight)
            for i, d in enumerate(trunk.destination_uris)
        },
        credentials={c.username: LiveCredential(f"{sid}c", None) for c in trunk.credentials},
        alias=trunk.alias,
        alias_read=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=10_000)
    args = parser.parse_args()
    desired = tuple(spec(i) for i in range(args.trunks))
    sids = [f"trmum1{i:022d}" for i in range(args.trunks)]
    ledger = Ledger(
        "prod",
        "ameyo5m",
        {
            t.name: TrunkEntry(
                sid,
                alias=t.alias,
                credentials={c.username: 1 for c in t.credentials},
                fingerprint=fingerprint(t),
                parts=parts(t),
            )
            for t, sid in zip(desired, sids, strict=True)
        },
    )
    trunks = {
        sid: live(t, sid, drifted=i % 10 == 0)
        for i, (t, sid) in enumerate(zip(desired, sids, strict=True))
    }
    state = AccountState(
        "prod",
        "full",
        trunks=trunks,
        listed={t.name: sid for t, sid in zip(desired, sids, strict=True)},
    )
    account = AccountInput(name="prod", sid="ameyo5m", profile="full", prune=False, desired=desired)
    started = time.perf_counter()
    plan = plan_account(account, ledger, state)
    elapsed = time.perf_counter() - started
    children = sum(
        len(t.phone_numbers) + len(t.whitelisted_ips) + len(t.destination_uris) + 2 for t in desired
    )
    actions = len(plan.actions)
    print(f"desired: {args.trunks:,} trunks, {children:,} children; plan: {actions:,} actions")
    print(f"diff + plan: {elapsed:.2f} s (target: under {TARGET_SECONDS:g} s)")
    met = elapsed < TARGET_SECONDS
    print("result:", "target met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
