"""API calls are the cost (Exotel allows 200 a minute per account, shared with everything
else): scoped plans and applies, applies that verify from the answers, lazy lookups."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import Refused
from reconciler.manifests.load import load
from reconciler.pipeline import drifting
from reconciler.pipeline.accounts import Options
from reconciler.render import json_text
from tests.estate import apply, environ, plan, seed, write
from tests.sandboxes import Api, Sandbox, ok
from tests.test_plan import BASE

TRUNKS = "".join(
    f"- name: t{i}\n  account: demo\n  whitelisted_ips: [44.250.0.{i + 1}]\n" for i in range(4)
)
CHILD_READS = 5  # DIDs, IPs, destinations, credentials, settings (profile full)


def reconciler_in(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


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
    assert f"DID +918040264209 is mapped on unmanaged trunk {other}, which the manifests" in (
        failed.detail
    )
    assert "or remove it from trunk bot's manifest" in failed.detail


def drift_run(folder: Path, sandbox: Sandbox, budget: int | None, now: datetime) -> Any:
    manifests = load(folder)
    return asyncio.run(
        drifting.drift(
            manifests,
            accounts=[],
            environ=environ(sandbox),
            options=Options(per_minute=0),
            budget=budget,
            now=now,
        )
    )


def test_budgeted_drift_sweeps_the_account_least_recently_checked_first(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    twelve = "".join(
        f"- name: t{i:02}\n  account: demo\n  whitelisted_ips: [44.250.0.{i + 1}]\n"
        for i in range(12)
    )
    folder = write(tmp_path, twelve)
    sids = seed(api, folder)
    budget = 1 + 5 * 5  # the trunk list's page, and five trunks of five reads
    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    seen: list[set[str]] = []
    for run in range(3):
        before = total(reads(sandbox))
        plan_, coverage = drift_run(folder, sandbox, budget, start + timedelta(hours=6 * run))
        assert total(reads(sandbox)) - before <= budget  # within its budget, every run
        [account] = plan_.accounts
        seen.append(set(account.scope or ()))
        [line] = coverage
        assert line.checked == len(seen[-1])
        assert line.runs_for_all == 3
    assert seen[0] | seen[1] | seen[2] == {f"t{i:02}" for i in range(12)}  # one sweep
    assert not seen[0] & seen[1]  # least recently checked first
    text = coverage[0].line(start + timedelta(hours=13))
    assert text == (
        "demo: 5 of 12 trunk(s) checked this run; every trunk within the last 3 run(s); "
        "oldest check 13 h ago"
    )
    # A hand change on any trunk is found within one sweep.
    ok(api.trunk(sids["t07"]).post("whitelisted-ips", {"ip": "3.7.7.7", "mask": 32}))
    found = []
    for run in range(3, 6):
        plan_, _ = drift_run(folder, sandbox, budget, start + timedelta(hours=6 * run))
        found += [a.address for a in plan_.actions]
    assert "demo/t07/whitelisted_ip/3.7.7.7/32" in found


def test_drift_without_a_budget_checks_everything_and_says_so(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    done = reconciler_in(folder, "drift", str(folder), env=environ(sandbox))
    assert done.returncode == 0, done.stderr
    assert "demo: 4 of 4 trunk(s) checked this run; every trunk within the last 1 run(s)" in (
        done.stdout
    )
    budgeted = reconciler_in(folder, "drift", str(folder), "--budget", "11", env=environ(sandbox))
    assert "demo: 2 of 4 trunk(s) checked this run; every trunk within the last 2 run(s)" in (
        budgeted.stdout
    )


def test_a_scoped_apply_refuses_a_manifest_change_nobody_reviewed(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    write(folder, TRUNKS.replace("44.250.0.1]", "44.250.0.1, 44.250.1.1]"))
    reviewed = json.loads(json_text(plan(folder, sandbox, refresh="changed")))
    # Another change lands in the manifests, outside the reviewed scope, unreviewed.
    both = TRUNKS.replace("44.250.0.1]", "44.250.0.1, 44.250.1.1]")
    write(folder, both.replace("44.250.0.3]", "44.250.0.3, 44.250.3.3]"))
    with pytest.raises(Refused) as refused:
        apply(folder, sandbox, saved_plans=(reviewed,))
    assert "demo/t2/whitelisted_ip/44.250.3.3/32 (new since the plan was made)" in str(
        refused.value
    )


def test_drift_found_earlier_stands_until_its_trunk_is_checked_again(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """So a budgeted sweep never says "no drift" only because it looked elsewhere."""
    folder = write(tmp_path, TRUNKS)
    sids = seed(api, folder)
    ok(api.trunk(sids["t0"]).post("whitelisted-ips", {"ip": "3.7.7.7", "mask": 32}))
    budget = 1 + 5  # one trunk a run
    runs = [
        reconciler_in(folder, "drift", str(folder), "--budget", str(budget), env=environ(sandbox))
        for _ in range(4)
    ]
    # t0 is checked first (never checked, first by name): drift, then remembered.
    assert [r.returncode for r in runs] == [2, 2, 2, 2], [r.stdout for r in runs]
    assert "demo/t0/whitelisted_ip/3.7.7.7/32: whitelisted_ip 3.7.7.7/32 added by hand" in (
        runs[0].stdout
    )
    assert "Found earlier, on trunks not checked again this run:" in runs[1].stdout
    assert "not checked again this run)" in runs[1].stdout
    # Once t0 is put back and checked again, the drift is gone for good.
    assert apply(folder, sandbox).converged
    runs = [
        reconciler_in(folder, "drift", str(folder), "--budget", str(budget), env=environ(sandbox))
        for _ in range(4)
    ]
    assert runs[-1].returncode == 0, runs[-1].stdout
    assert "No drift in the trunks checked this run" in runs[-1].stdout


def test_a_budget_that_pays_for_no_trunk_is_refused(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    before = total(reads(sandbox))
    result = reconciler_in(folder, "drift", str(folder), "--budget", "5", env=environ(sandbox))
    assert result.returncode == 1
    assert "--budget 5 pays for no trunk of account demo" in result.stderr
    assert "take 6 calls; give at least that" in result.stderr
    assert total(reads(sandbox)) == before  # refused before any call


def test_trunk_targets_one_trunk_and_says_the_rest_was_not_looked_at(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    changed = TRUNKS.replace("44.250.0.1]", "44.250.0.1, 44.250.1.1]")
    write(folder, changed.replace("44.250.0.2]", "44.250.0.2, 44.250.2.2]"))
    env = environ(sandbox)
    before = total(reads(sandbox))
    result = reconciler_in(folder, "plan", str(folder), "--trunk", "t1", env=env)
    assert result.returncode == 0, result.stderr
    assert "demo/t1/whitelisted_ip/44.250.2.2/32" in result.stdout
    assert "demo/t0/" not in result.stdout  # not targeted: not planned
    assert "--trunk t1: only these were looked at" in result.stdout
    assert total(reads(sandbox)) - before == CHILD_READS + 1  # t1 and the trunk list
    applied = reconciler_in(
        folder, "apply", str(folder), "--trunk", "t1", "--auto-approve", env=env
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    left = plan(folder, sandbox)
    assert [a.address for a in left.actions] == ["demo/t0/whitelisted_ip/44.250.1.1/32"]


def test_a_trunk_name_nobody_declares_is_an_error_not_no_changes(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """A typo in a CI target must fail the job, in every command that takes --trunk;
    a trunk only the ledger still holds (on its way out) is a target like any other."""
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    env = environ(sandbox)
    before = total(reads(sandbox))
    for command in (["plan"], ["apply", "--auto-approve"], ["drift"]):
        result = reconciler_in(
            folder, command[0], str(folder), *command[1:], "--trunk", "t11", env=env
        )
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "--trunk t11: the manifests declare no such trunk; did you mean 't1'?" in (
            result.stderr
        )
        assert "No changes" not in result.stdout
    assert total(reads(sandbox)) == before  # refused before any call
    write(
        folder, TRUNKS.replace("- name: t1\n  account: demo\n  whitelisted_ips: [44.250.0.2]\n", "")
    )
    leaving = reconciler_in(folder, "plan", str(folder), "--trunk", "t1", env=env)
    assert leaving.returncode == 0, leaving.stderr


def test_drift_reports_a_trunk_made_by_hand_in_a_managed_account(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, TRUNKS)
    seed(api, folder)
    env = environ(sandbox)
    quiet = reconciler_in(folder, "drift", str(folder), env=env)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    stranger = api.create_trunk("by_hand")
    text = reconciler_in(folder, "drift", str(folder), env=env)
    assert text.returncode == 2, text.stdout + text.stderr
    assert "Drift: 1 trunk(s) made outside the reconciler" in text.stdout
    assert f"demo: live trunk by_hand ({stranger})" in text.stdout
    as_json = reconciler_in(folder, "drift", str(folder), "--format", "json", env=env)
    document = json.loads(as_json.stdout)
    assert document["drift"] is True
    [found] = document["unmanaged"]
    assert stranger in found["message"]
    markdown = reconciler_in(folder, "drift", str(folder), "--format", "markdown", env=env)
    assert "Trunks made outside the reconciler" in markdown.stdout
    assert f"by_hand ({stranger})" in markdown.stdout
