"""``apply`` against the sandbox over loopback HTTP: every change, both profiles, faults."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import Locked, Refused
from reconciler.live import ledger as ledgers
from reconciler.render import json_text
from tests.estate import PASSWORD, apply, environ, live_trunks, plan, seed, write, writes
from tests.sandboxes import Api, Sandbox
from tests.test_plan import BASE, CHANGED, DID_LINE

LEDGER = Path("state/demo.json")


def converged(result: object) -> bool:
    return bool(getattr(result, "converged", False))


def ledger_of(folder: Path) -> ledgers.Ledger:
    return ledgers.read(folder / LEDGER, account="demo", account_sid="demo")


def test_create_from_empty_then_nothing_to_do(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    result = apply(folder, sandbox)
    assert converged(result)
    assert [o.status for o in result.outcomes] == ["done"] * 9
    [trunk] = live_trunks(sandbox)
    assert ledger_of(folder).trunks["bot"].sid == trunk["trunk_sid"]
    assert [d["destination"] for d in trunk["destination_uris"]] == [
        "sip:44.248.146.11:5061;transport=tls",
        "sip:sbc.example.com:5061;transport=tls",
    ]
    assert (
        trunk["credentials"][0]["password_sha256"] == hashlib.sha256(PASSWORD.encode()).hexdigest()
    )
    # One request for all of a trunk's destinations.
    assert (
        sandbox.stats()["by_route"]["POST /v2/accounts/{sid}/trunks/{trunk_sid}/destination-uris"]
        == 1
    )
    before = writes(sandbox)
    again = apply(folder, sandbox)
    assert again.plan.actions == ()
    assert writes(sandbox) == before  # applying twice: zero write calls
    assert plan(folder, sandbox).actions == ()


def test_every_change_in_profile_full(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    apply(folder, sandbox)
    write(folder, CHANGED)
    env = {**environ(sandbox), "SIP_PASSWORD": "Rotated_pw_2"}
    result = apply(folder, sandbox, env=env)
    assert converged(result), result.remaining.actions
    [trunk] = live_trunks(sandbox)
    assert trunk["trunk_name"] == "bot2"
    assert {n["phone_number"]: n["mode"] for n in trunk["phone_numbers"]} == {
        "+918040264208": "pstn",
        "+918040264210": "pstn",
    }
    assert sorted(f"{i['ip']}/{i['mask']}" for i in trunk["whitelisted_ips"]) == [
        "44.248.146.11/32",
        "52.66.1.1/32",
    ]
    assert {d["destination"]: d["priority"] for d in trunk["destination_uris"]} == {
        "sip:sbc.example.com:5061;transport=tls": 0,
        "sip:52.66.1.1:5061;transport=tls": 0,
    }
    assert trunk["settings"][0]["value"] == "+918040264210"
    rotated = {c["user_name"]: c["password_sha256"] for c in trunk["credentials"]}
    assert rotated["bot_user"] == hashlib.sha256(b"Rotated_pw_2").hexdigest()
    recorded = ledger_of(folder)
    assert list(recorded.trunks) == ["bot2"]  # renamed in the ledger too
    assert recorded.trunks["bot2"].credentials == {"bot_user": 2, "second": 1}
    assert plan(folder, sandbox).actions == ()


def test_removals_in_profile_full(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    apply(folder, sandbox)
    write(folder, "- name: bot\n  account: demo\n  whitelisted_ips: [44.248.146.11]\n")
    assert converged(apply(folder, sandbox))
    [trunk] = live_trunks(sandbox)
    assert (trunk["phone_numbers"], trunk["destination_uris"], trunk["credentials"]) == ([], [], [])
    assert trunk["settings"] == []
    assert ledger_of(folder).trunks["bot"].alias is None


def test_profile_minimal_leaves_manual_steps_and_says_so(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE, profile="minimal")
    apply(folder, sandbox)
    write(folder, BASE.replace(DID_LINE, ""), profile="minimal")
    result = apply(folder, sandbox)
    assert not converged(result)
    assert [o.status for o in result.outcomes] == ["manual"]
    [remaining] = result.remaining.actions
    assert remaining.kind == "manual"
    assert "unmap this DID" in remaining.reason


def test_replacement_when_allowed_records_the_new_sid(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    replaceable = BASE.replace("account: demo", "account: demo\n  allow_replace: true")
    folder = write(tmp_path, replaceable, profile="minimal")
    apply(folder, sandbox)
    old_sid = ledger_of(folder).trunks["bot"].sid
    write(folder, replaceable.replace(DID_LINE, ""), profile="minimal")
    result = apply(folder, sandbox)
    assert converged(result)
    assert any("sip:" + old_sid in n.message for n in result.plan.notices)
    new_sid = ledger_of(folder).trunks["bot"].sid
    assert new_sid != old_sid
    assert [t["trunk_sid"] for t in live_trunks(sandbox)] == [new_sid]
    assert plan(folder, sandbox).actions == ()


def test_password_rotation_in_minimal_recreates_the_credential(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE, profile="minimal")
    apply(folder, sandbox)
    first_id = live_trunks(sandbox)[0]["credentials"][0]["id"]
    write(
        folder,
        BASE.replace(
            "friendly_name: bot_label", "friendly_name: bot_label\n      password_version: 2"
        ),
        profile="minimal",
    )
    result = apply(folder, sandbox, env={**environ(sandbox), "SIP_PASSWORD": "New_pw_3"})
    assert converged(result)
    [credential] = live_trunks(sandbox)[0]["credentials"]
    assert credential["id"] != first_id
    assert credential["password_sha256"] == hashlib.sha256(b"New_pw_3").hexdigest()
    assert ledger_of(folder).trunks["bot"].credentials == {"bot_user": 2}


def test_a_did_moves_between_trunks(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    did = '  phone_numbers: ["+918040264208"]\n'
    a, b = "- name: a\n  account: demo\n", "- name: b\n  account: demo\n"
    folder = write(tmp_path, a + did + b)
    apply(folder, sandbox)
    write(folder, a + b + did)
    result = apply(folder, sandbox)
    assert converged(result)
    order = [o.action.operation for o in result.outcomes]
    assert order.index("unmap_number") < order.index("map_number")
    holders = {
        t["trunk_name"]: [n["phone_number"] for n in t["phone_numbers"]]
        for t in live_trunks(sandbox)
    }
    assert holders == {"a": [], "b": ["+918040264208"]}


def test_a_failure_skips_dependents_and_the_next_apply_resumes(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    sandbox.faults(
        # Three answers each (a 5xx create is read back and sent again, twice at most).
        {"method": "POST", "path": "*/whitelisted-ips", "fault": "error_500", "count": 6}
    )
    first = apply(folder, sandbox)
    assert not converged(first)
    statuses = {o.action.address: o.status for o in first.outcomes}
    assert list(statuses.values()).count("failed") == 2
    skipped = [address for address, status in statuses.items() if status == "skipped"]
    assert skipped == ["demo/bot/destination_uri/44.248.146.11:5061;transport=tls"]
    assert ledger_of(folder).trunks["bot"].fingerprint is None  # not all of it landed
    second = apply(folder, sandbox)
    assert converged(second)
    assert len(second.outcomes) == 3  # only what was left: two IPs, one destination
    journal = (folder / "state" / "demo.journal.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in journal]
    assert events.count("failed") == 2
    assert events.count("skipped") == 1
    assert PASSWORD not in "\n".join(journal)


@pytest.mark.parametrize(
    "path", ["*/trunks", "*/whitelisted-ips", "*/credentials", "*/destination-uris"]
)
def test_a_5xx_on_a_create_is_settled_in_the_same_run(
    tmp_path: Path, sandbox: Sandbox, api: Api, path: str
) -> None:
    """A 5xx may or may not have landed: read back, and sent again only when absent."""
    folder = write(tmp_path, BASE)
    sandbox.faults({"method": "POST", "path": path, "fault": "error_500", "count": 1})
    assert converged(apply(folder, sandbox))
    assert len(live_trunks(sandbox)) == 1
    assert plan(folder, sandbox).actions == ()


@pytest.mark.parametrize(
    "path",
    ["*/whitelisted-ips", "*/phone-numbers", "*/credentials", "*/destination-uris", "*/settings"],
)
def test_a_lost_answer_on_a_child_is_checked_not_duplicated(
    tmp_path: Path, sandbox: Sandbox, api: Api, path: str
) -> None:
    folder = write(tmp_path, BASE)
    sandbox.faults({"method": "POST", "path": path, "fault": "drop_connection", "count": 1})
    result = apply(folder, sandbox)
    assert converged(result), [
        (o.action.address, o.detail) for o in result.outcomes if o.status != "done"
    ]
    [trunk] = live_trunks(sandbox)
    assert len(trunk["whitelisted_ips"]) == 2
    assert len(trunk["phone_numbers"]) == 2
    assert len(trunk["destination_uris"]) == 2
    assert len(trunk["credentials"]) == 1


def test_a_trunk_create_with_a_lost_answer_is_found_by_name(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    sandbox.faults({"method": "POST", "path": "*/trunks", "fault": "drop_connection", "count": 1})
    assert converged(apply(folder, sandbox))  # nothing had landed: created once
    other = write(
        tmp_path / "other",
        BASE.replace("name: bot", "name: bot_two").replace("+9180402642", "+9180402643"),
    )
    sandbox.faults(
        {"method": "POST", "path": "*/trunks", "fault": "timeout_after_commit", "count": 1}
    )
    # The create lands but its answer never comes: found by name, not created twice.
    assert converged(apply(other, sandbox, timeout=1.0))
    assert sorted(t["trunk_name"] for t in live_trunks(sandbox)) == ["bot", "bot_two"]


def test_in_minimal_a_lost_trunk_create_becomes_a_pending_import(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE, profile="minimal")
    sandbox.faults({"method": "POST", "path": "*/trunks", "fault": "drop_connection", "count": 1})
    first = apply(folder, sandbox)
    assert not converged(first)
    failed = next(o for o in first.outcomes if o.status == "failed")
    assert "reconciler import --account demo --trunk-sid SID" in failed.detail
    assert ledger_of(folder).pending == ("bot",)
    [step] = plan(folder, sandbox).actions  # never created twice: a manual import step
    assert (step.kind, step.address) == ("manual", "demo/bot")


def test_a_stale_saved_plan_is_refused(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    reviewed = json.loads(json_text(plan(folder, sandbox)))
    extra = '    - "+918040264299"\n'
    write(folder, BASE.replace(DID_LINE, DID_LINE + extra))
    with pytest.raises(Refused) as refused:
        apply(folder, sandbox, saved_plans=(reviewed,))
    message = str(refused.value)
    assert "the saved plan is stale" in message
    assert "demo/bot/phone_number/+918040264299 (new since the plan was made)" in message
    assert live_trunks(sandbox) == []  # nothing applied
    current = json.loads(json_text(plan(folder, sandbox)))
    assert converged(apply(folder, sandbox, saved_plans=(current,)))


def test_what_is_left_of_a_reviewed_plan_is_accepted(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """A re-run after a partial apply: the fresh plan is a subset of the reviewed one."""
    folder = write(tmp_path, BASE)
    reviewed = json.loads(json_text(plan(folder, sandbox)))
    sandbox.faults({"method": "POST", "path": "*/credentials", "fault": "error_500", "count": 3})
    first = apply(folder, sandbox, saved_plans=(reviewed,))
    assert not converged(first)
    assert converged(apply(folder, sandbox, saved_plans=(reviewed,)))
    # Doing less than reviewed is accepted; doing anything else is not.
    write(folder, BASE.replace("bot_label", "other_label"))
    with pytest.raises(Refused):
        apply(folder, sandbox, saved_plans=(reviewed,))


def test_several_reviewed_plans_cover_their_union(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Two merged pull requests applied by one run: each reviewed its own part."""
    folder = write(tmp_path, BASE)
    assert converged(apply(folder, sandbox))
    one = BASE.replace(
        "[44.248.146.11, 13.126.40.0/24]", "[44.248.146.11, 13.126.40.0/24, 3.7.7.7]"
    )
    write(folder, one)
    first = json.loads(json_text(plan(folder, sandbox)))
    write(folder, BASE.replace("bot_label", "renamed_label"))
    second = json.loads(json_text(plan(folder, sandbox)))
    write(folder, one.replace("bot_label", "renamed_label"))  # both merged
    with pytest.raises(Refused):
        apply(folder, sandbox, saved_plans=(second,))
    assert converged(apply(folder, sandbox, saved_plans=(first, second)))


def test_a_second_apply_is_locked_out(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    lock = ledgers.Lock.beside(folder / LEDGER)
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(
        json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "then"})
    )
    with pytest.raises(Locked, match=f"locked by pid {os.getppid()}"):
        apply(folder, sandbox)
    with pytest.raises(Locked):  # a live holder is never broken
        apply(folder, sandbox, break_lock=True)
    lock.path.write_text(
        json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename, "started": "then"})
    )
    with pytest.raises(Locked, match="--break-lock"):
        apply(folder, sandbox)
    assert converged(apply(folder, sandbox, break_lock=True))
    assert not lock.path.exists()  # released afterwards


def test_an_empty_checkout_is_refused_unless_forced(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE, prune=True)
    apply(folder, sandbox)
    (folder / "trunks.yaml").write_text("trunks: []\n")
    with pytest.raises(Refused, match="declares no trunks"):
        apply(folder, sandbox)
    assert len(live_trunks(sandbox)) == 1
    assert converged(apply(folder, sandbox, force=True))
    assert live_trunks(sandbox) == []
    assert ledger_of(folder).trunks == {}


def test_protect_keeps_a_trunk_that_is_no_longer_declared(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(
        tmp_path,
        BASE.replace("account: demo", "account: demo\n  protect: true")
        + "- name: other\n  account: demo\n",
        prune=True,
    )
    apply(folder, sandbox)
    write(folder, "- name: other\n  account: demo\n", prune=True)
    result = apply(folder, sandbox)
    assert result.plan.actions == ()
    assert sorted(t["trunk_name"] for t in live_trunks(sandbox)) == ["bot", "other"]


def test_an_adopted_trunk_gets_its_password_set(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    seed(api, folder, record=False)
    result = apply(folder, sandbox, env={**environ(sandbox), "SIP_PASSWORD": "Adopted_pw_9"})
    assert converged(result)
    [trunk] = live_trunks(sandbox)
    assert trunk["credentials"][0]["password_sha256"] == hashlib.sha256(b"Adopted_pw_9").hexdigest()
    assert ledger_of(folder).trunks["bot"].sid == trunk["trunk_sid"]


def test_lock_timeout_waits_for_the_other_apply_then_goes_on(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    lock = ledgers.Lock.beside(folder / LEDGER)
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(
        json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "then"})
    )
    threading.Timer(1.5, lock.path.unlink).start()  # the other apply finishes
    started = time.monotonic()
    with pytest.raises(Locked):
        apply(folder, sandbox, lock_timeout=0.5)  # not long enough
    assert converged(apply(folder, sandbox, lock_timeout=10))
    assert 1.0 < time.monotonic() - started < 10


def test_retiring_a_protected_trunk(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    """protect: true -> false alone is a change (the ledger keeps it); then the trunk goes."""
    protected = BASE.replace("account: demo", "account: demo\n  protect: true")
    folder = write(tmp_path, protected, prune=True)
    assert converged(apply(folder, sandbox))
    assert ledger_of(folder).trunks["bot"].protect
    # Undeclared while protected: kept, and the plan says how to retire it.
    (folder / "trunks.yaml").write_text("trunks: []\n")
    (folder / "other.yaml").write_text("trunks:\n  - name: keep\n    account: demo\n")
    said = [notice.message for notice in plan(folder, sandbox).notices]
    assert any("declare it again with protect: false" in message for message in said), said
    (folder / "other.yaml").unlink()
    write(folder, BASE, prune=True)  # protect: false, nothing else
    [step] = plan(folder, sandbox).actions
    assert (step.operation, step.address, step.after) == (
        "record_protect",
        "demo/bot/protect",
        {"protect": False},
    )
    assert converged(apply(folder, sandbox))
    assert not ledger_of(folder).trunks["bot"].protect
    (folder / "trunks.yaml").write_text("trunks: []\n")  # now it may be removed
    (folder / "other.yaml").write_text("trunks:\n  - name: keep\n    account: demo\n")
    result = apply(folder, sandbox)
    assert "delete_trunk" in [a.operation for a in result.plan.actions]
    assert [t["trunk_name"] for t in live_trunks(sandbox)] == ["keep"]


def test_a_password_changed_without_its_version_is_warned_never_stored(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """The ledger keeps a salted scrypt check of the password it set, never the password;
    a plan or apply that has the variable warns when the value is not that one while
    password_version is unchanged (apply would not send it)."""
    import asyncio  # noqa: PLC0415

    from reconciler.manifests.load import load  # noqa: PLC0415
    from reconciler.pipeline import Options, make_plan  # noqa: PLC0415
    from reconciler.plan.actions import NoticeKind  # noqa: PLC0415

    del api
    folder = write(tmp_path, BASE)
    assert apply(folder, sandbox).converged
    text = (folder / "state" / "demo.json").read_text()
    assert PASSWORD not in text
    stored = json.loads(text)["trunks"]["bot"]["credentials"]["bot_user"]
    assert stored["password_version"] == 1
    assert stored["password_check"].startswith("scrypt$16384$8$1$")

    def planned(**extra: str) -> list[str]:
        found = asyncio.run(
            make_plan(
                load(folder), accounts=[], environ=environ(sandbox, **extra), options=Options()
            )
        )
        return [n.message for n in found.notices if n.kind is NoticeKind.PASSWORD]

    assert planned() == []  # the value last set: nothing to say
    [warning] = planned(SIP_PASSWORD="Another_pw_2")
    assert (
        "SIP_PASSWORD is not the password last set on credential bot_user of trunk bot" in warning
    )
    assert "password_version is still 1" in warning
    assert "Another_pw_2" not in warning
    assert planned(SIP_PASSWORD="") == []  # a plan without passwords cannot tell, says nothing
    # Bumping the version rotates it, and the check follows the new value.
    write(
        folder,
        BASE.replace(
            "friendly_name: bot_label", "friendly_name: bot_label\n      password_version: 2"
        ),
    )
    rotated = apply(folder, sandbox, env=environ(sandbox, SIP_PASSWORD="Another_pw_2"))
    assert rotated.converged
    assert planned(SIP_PASSWORD="Another_pw_2") == []
    assert planned() != []  # the old value is now the one that differs
