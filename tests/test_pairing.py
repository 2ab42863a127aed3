"""One pairing rule (``live.pairing``), and what follows from it: collisions as manual
steps, and an apply that never claims convergence while anything failed."""

from __future__ import annotations

from pathlib import Path

from reconciler.live.pairing import Match, pair
from reconciler.live.state import Ledger, TrunkEntry
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import (
    AccountPlan,
    Action,
    ApplyResult,
    Kind,
    NoticeKind,
    Operation,
    Origin,
    Outcome,
    Plan,
    Resource,
    Status,
)
from tests.estate import apply, environ, live_trunks, plan, write
from tests.sandboxes import Api, Sandbox, ok
from tests.test_plan_cli import reconciler

DOMAIN = "demo.pstn.exotel.com"


def spec(name: str, renamed_from: str | None = None) -> TrunkSpec:
    return TrunkSpec(name=name, account="demo", renamed_from=renamed_from, domain_name=DOMAIN)


def ledger(**sids: str) -> Ledger:
    return Ledger("demo", "demo", {name: TrunkEntry(sid) for name, sid in sids.items()})


def test_each_way_a_declared_trunk_pairs() -> None:
    found = pair(
        [
            spec("kept"),
            spec("moved", renamed_from="old"),
            spec("clash", renamed_from="was"),
            spec("adopted"),
            spec("taken"),
            spec("fresh"),
        ],
        ledger(kept="S1", old="S2", was="S3", elsewhere="S4", gone="S9"),
        {"kept": "S1", "old": "S2", "was": "S3", "clash": "S5", "adopted": "S6", "taken": "S4"},
    )
    got = {p.spec.name: (p.match, p.ledger_name, p.sid, p.blocker) for p in found}
    assert got == {
        "kept": (Match.MANAGED, "kept", "S1", None),
        "moved": (Match.RENAMED, "old", "S2", None),
        "clash": (Match.RENAME_TAKEN, "was", "S3", "S5"),
        "adopted": (Match.ADOPT, None, "S6", None),
        "taken": (Match.NAME_TAKEN, None, None, "S4"),
        "fresh": (Match.NEW, None, None, None),
    }
    assert set(found.undeclared) == {"elsewhere", "gone"}
    # The trunk holding "clash" is nobody's: reported, never adopted by the rename.
    assert found.unmanaged == {"clash": "S5"}
    assert found.sids() == {"kept": "S1", "moved": "S2", "clash": "S3", "adopted": "S6"}


def test_a_pending_create_is_never_paired_as_new() -> None:
    pending = Ledger("demo", "demo", pending=("late",))
    [found] = pair([spec("late")], pending)
    assert found.match is Match.PENDING
    # Without a trunk list (profile minimal) nothing is adopted, nothing is unmanaged.
    [found] = pair([spec("x")], ledger(), None)
    assert found.match is Match.NEW


def test_apply_converges_only_when_every_action_succeeded() -> None:
    action = Action(
        address="demo/bot",
        kind=Kind.UPDATE,
        resource=Resource.TRUNK,
        operation=Operation.RENAME_TRUNK,
        account="demo",
        trunk="bot",
        key="",
        before={"name": "old"},
        after={"name": "bot"},
        reason="renamed",
        origin=Origin.MANIFEST,
    )
    empty = Plan((AccountPlan("demo", "demo", "full", (), (), 0, 0, 0),))
    planned = Plan((AccountPlan("demo", "demo", "full", (action,), (), 1, 1, 0),))
    assert ApplyResult(planned, (Outcome(action, Status.DONE),), empty).converged
    # Nothing left to do on a re-read is not enough: the action failed.
    assert not ApplyResult(planned, (Outcome(action, Status.FAILED, "1008"),), empty).converged


def test_a_rename_onto_a_name_a_live_trunk_holds_is_a_manual_step(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Apply oldname; create newname by hand; rename oldname to newname in the manifests."""
    folder = write(tmp_path / "manifests", "- name: oldname\n  account: demo\n")
    assert apply(folder, sandbox).converged
    body = {"trunk_name": "newname", "nso_code": "ANY-ANY", "domain_name": DOMAIN}
    hand_made = str(ok(api.post("/trunks", body))["trunk_sid"])
    write(folder, "- name: newname\n  renamed_from: oldname\n  account: demo\n")

    result = plan(folder, sandbox)
    [step] = result.actions
    assert (step.kind, step.operation, step.address) == (
        Kind.MANUAL,
        Operation.RENAME_TRUNK,
        "demo/newname",
    )
    assert f"live trunk {hand_made} already has the name newname" in step.reason
    assert f"reconciler import --account demo --trunk-sid {hand_made}" in step.reason
    [unmanaged] = [n for n in result.notices if n.kind is NoticeKind.UNMANAGED]
    assert hand_made in unmanaged.message

    done = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Converged" not in done.stdout
    assert "Not converged" in done.stdout
    assert "already has the name newname" in done.stdout
    # The same step stays in every plan until a person resolves it.
    assert [a.operation for a in plan(folder, sandbox).actions] == [Operation.RENAME_TRUNK]


def test_a_failed_rename_is_never_reported_converged(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """The rename fails (Exotel answers 500 every time): apply must say so and exit 1,
    even though verifying reads the trunk under its old name and finds the rest in place."""
    folder = write(tmp_path / "manifests", "- name: oldname\n  account: demo\n")
    assert apply(folder, sandbox).converged
    write(folder, "- name: newname\n  renamed_from: oldname\n  account: demo\n")
    sandbox.faults({"method": "PUT", "path": "*/trunks/*", "fault": "error_500", "count": 100})
    done = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Converged" not in done.stdout
    assert "Not converged: 1 action(s) did not succeed" in done.stdout
    sandbox.faults()
    assert [a.operation for a in plan(folder, sandbox).actions] == [Operation.RENAME_TRUNK]


def test_a_new_trunk_whose_name_a_ledger_trunk_holds_is_a_manual_step(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Trunk a, renamed to b by hand on Exotel; the manifests now also declare a new b."""
    folder = write(tmp_path / "manifests", "- name: a\n  account: demo\n")
    assert apply(folder, sandbox).converged
    sid = live_sid(sandbox, "a")
    ok(api.put(f"/trunks/{sid}", {"trunk_name": "b"}))
    write(folder, "- name: a\n  account: demo\n- name: b\n  account: demo\n")
    got = {a.address: (a.kind, a.operation) for a in plan(folder, sandbox).actions}
    assert got == {
        "demo/a": (Kind.UPDATE, Operation.RENAME_TRUNK),  # back to its declared name
        "demo/b": (Kind.MANUAL, Operation.CREATE_TRUNK),  # not a create that would fail
    }
    [step] = [a for a in plan(folder, sandbox).actions if a.address == "demo/b"]
    assert f"held by live trunk {sid}, which the ledger tracks as a" in step.reason


def live_sid(sandbox: Sandbox, name: str) -> str:
    [trunk] = [t for t in live_trunks(sandbox) if t["trunk_name"] == name]
    return str(trunk["trunk_sid"])
