"""API calls are the cost (Exotel allows 200 a minute per account, shared with everything
else): scoped plans and applies, applies that verify from the answers, lazy lookups."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.render import json_text
from tests.estate import apply, plan, seed, write
from tests.sandboxes import Api, Sandbox, ok
from tests.test_plan import BASE

TRUNKS = "".join(
    f"- name: t{i}\n  account: demo\n  whitelisted_ips: [44.250.0.{i + 1}]\n" for i in range(4)
)
CHILD_READS = 5  # DIDs, IPs, destinations, credentials, settings (profile full)


def reads(sandbox: Sandbox) -> dict[str, int]:
    return {route: n for route, n in sandbox.stats()["by_route"].items() if route.startswith("GET")}


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def test_a_first_apply_spends_writes_and_the_trunk_list_only(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    result = apply(folder, sandbox)
    assert result.converged
    stats = sandbox.stats()["by_route"]
    gets = {route: n for route, n in stats.items() if route.startswith("GET")}
    # The trunk list (one page), and nothing else read: no DID lookups (trunk-maps), no
    # re-reading what was written, since every answer said what was asked.
    assert gets == {"GET /v2/accounts/{sid}/trunks": 1}
    writes = sum(n for route, n in stats.items() if not route.startswith("GET"))
    assert writes == 8  # trunk, 2 IPs, 1 destination batch, 2 DIDs, alias, credential


def test_a_scoped_saved_plan_is_applied_whatever_drifted_elsewhere(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    sids = seed(api, folder)
    write(folder, TRUNKS.replace("44.250.0.1]", "44.250.0.1, 44.250.1.1]"))
    reviewed = json.loads(json_text(plan(folder, sandbox, refresh="changed")))
    [account] = reviewed["accounts"]
    assert account["scope"] == ["t0"]
    # Someone changes t2 by hand after the review: drift's business, not a refusal.
    ok(api.trunk(sids["t2"]).post("whitelisted-ips", {"ip": "3.7.7.7", "mask": 32}))
    before = total(reads(sandbox))
    result = apply(folder, sandbox, saved_plans=(reviewed,))
    assert result.converged
    assert [a.address for a in result.plan.actions] == ["demo/t0/whitelisted_ip/44.250.1.1/32"]
    # Exactly the scope re-read (t0's collections) and the trunk list; nothing verified
    # by reading again.
    assert total(reads(sandbox)) - before == CHILD_READS + 1
    # The drift on t2 is still there for drift to find.
    drift = plan(folder, sandbox)
    assert [a.address for a in drift.actions] == ["demo/t2/whitelisted_ip/3.7.7.7/32"]


def test_a_did_held_elsewhere_is_named_when_mapping_fails(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    other = api.create_trunk("other")
    api.trunk(other).map("+918040264209")
    result = apply(folder, sandbox)
    assert not result.converged
    [failed] = [o for o in result.outcomes if o.status == "failed"]
    assert failed.action.address == "demo/bot/phone_number/+918040264209"
    assert f"DID +918040264209 is mapped on unmanaged trunk {other}" in failed.detail
