"""``reconciler apply`` as CI runs it: a subprocess, no terminal, exit codes 0, 1 and 3."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.estate import environ, live_trunks, write
from tests.sandboxes import Api, Sandbox, running
from tests.test_plan import BASE
from tests.test_plan_cli import reconciler


def test_no_terminal_and_no_approval_is_refused(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE)
    result = reconciler("apply", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 3
    assert "refused: no terminal to confirm on: pass --auto-approve" in result.stderr
    as_json = reconciler("apply", "--format", "json", env=environ(sandbox), cwd=tmp_path)
    assert as_json.returncode == 3
    document = json.loads(as_json.stdout)  # still one JSON document on stdout
    assert (document["outcome"], document["converged"]) == ("refused", False)
    assert "no terminal to confirm on" in document["error"]
    assert "Plan: 9 to create" in result.stdout  # it showed what it would have done
    assert live_trunks(sandbox) == []
    # On GitHub the job summary says so too.
    summary = tmp_path / "summary.md"
    env = environ(sandbox, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert reconciler("apply", env=env, cwd=tmp_path).returncode == 3
    assert summary.read_text().startswith("### reconciler apply: refused (exit 3)")
    assert "no terminal to confirm on" in summary.read_text()


def test_auto_approve_applies_and_reports(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE)
    result = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Apply: 9 done, 0 failed, 0 skipped, 0 manual." in result.stdout
    assert "Converged: live state matches the manifests." in result.stdout
    # Without a terminal, progress is one structured line per action on stderr.
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert sum(1 for e in events if e["event"] == "apply.action") == 9
    again = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert again.returncode == 0
    assert "No changes." in again.stdout


def test_a_reviewed_plan_applies_without_a_question(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    env = environ(sandbox)
    assert reconciler("plan", "--out", "plan.json", env=env, cwd=tmp_path).returncode == 0
    result = reconciler("apply", "--plan", "plan.json", "--format", "json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout[result.stdout.index('{\n  "format_version"') :])
    assert report["converged"] is True
    assert len(report["done"]) == 9
    write(folder, BASE.replace("mode: flow", "mode: pstn"))
    stale = reconciler("apply", "--plan", "plan.json", env=env, cwd=tmp_path)
    assert stale.returncode == 3
    assert "the saved plan is stale" in stale.stderr


def test_rails_and_locks_from_the_command_line(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path / "manifests", BASE, prune=True)
    env = environ(sandbox)
    assert reconciler("apply", "--auto-approve", env=env, cwd=tmp_path).returncode == 0
    (folder / "trunks.yaml").write_text("trunks: []\n")
    refused = reconciler("apply", "--auto-approve", env=env, cwd=tmp_path)
    assert refused.returncode == 3
    assert "safety rails hold" in refused.stderr
    lock = folder / "state" / "demo.json.lock"
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-11-26T00:00:00Z"}
    lock.write_text(json.dumps(holder))
    locked = reconciler("apply", "--auto-approve", "--force", env=env, cwd=tmp_path)
    assert locked.returncode == 1
    assert f"is locked by pid {os.getppid()} on host {socket.gethostname()}" in locked.stderr
    lock.unlink()
    forced = reconciler("apply", "--auto-approve", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert live_trunks(sandbox) == []


def test_a_failed_apply_exits_one_and_lists_what_remains(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    write(tmp_path / "manifests", BASE)
    sandbox.faults({"method": "POST", "path": "*/credentials", "fault": "error_500", "count": 3})
    result = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 1
    assert "Failed:" in result.stdout
    assert "Not converged: 1 action(s) did not succeed; 1 action(s) remain" in result.stdout
    assert "demo/bot/credential/bot_user" in result.stdout.split("Remaining:")[1]


def test_sigterm_stops_an_apply_cleanly(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    """A CI runner cancelling the job sends SIGTERM: the lock goes, the journal says so."""
    write(tmp_path / "manifests", BASE)
    # Hold the credential's answer so the apply is surely in flight when the signal comes.
    sandbox.faults(
        {"method": "POST", "path": "*/credentials", "fault": "timeout_after_commit", "count": 1}
    )
    state = tmp_path / "manifests" / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=tmp_path,
        env={**os.environ, **environ(sandbox)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = state / "demo.journal.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = journal.read_text().splitlines() if journal.exists() else []
        if any("credential/bot_user" in line for line in lines):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stdout + stderr
    assert "interrupted after" in stderr
    assert "run apply again" in stderr
    assert not (state / "demo.json.lock").exists()
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last["event"] in ("apply.interrupted", "apply.finished")
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert "apply.interrupted" in events
    # What landed is in the ledger: the trunk is not created twice by the next apply.
    sandbox.faults()
    again = reconciler("apply", "--auto-approve", env=environ(sandbox), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(live_trunks(sandbox)) == 1


def test_a_signal_lets_the_requests_in_flight_land_and_sends_no_new_one(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The first SIGTERM (or SIGINT, as GitHub sends first) drains: the actions in flight
    are answered and recorded, none starts after it, and the exit says so."""
    write(tmp_path / "manifests", BASE)
    with running("--rate-limit", "0", "--latency-ms", "1500", log_path=tmp_path / "s.log") as slow:
        env = {**os.environ, **environ(slow)}
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        journal = tmp_path / "manifests" / "state" / "demo.journal.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = journal.read_text().splitlines() if journal.exists() else []
            if any(json.loads(line)["event"] == "started" for line in lines if line):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, stdout + stderr
        assert "stopping: no new request is sent" in stderr
        assert "no new request was sent after the signal" in stderr
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        actions = [r for r in records if "address" in r]
        started = {r["address"] for r in actions if r["event"] == "started"}
        settled = {r["address"]: r["event"] for r in actions if r["event"] != "started"}
        # Every action that was sent got its answer recorded; the rest were never sent.
        assert started
        assert all(settled[address] == "succeeded" for address in started)
        skipped = [a for a, event in settled.items() if event == "skipped"]
        assert skipped, settled
        assert records[-1]["event"] == "apply.interrupted"
        # The next run finishes the job without creating the trunk twice.
        again = reconciler("apply", "--auto-approve", env=environ(slow), cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(live_trunks(slow)) == 1


def test_apply_format_json_prints_one_json_document(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    write(tmp_path / "manifests", BASE)
    env = environ(sandbox)
    result = reconciler("apply", "--auto-approve", "--format", "json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # nothing else on stdout
    assert document["converged"] is True
    assert len(document["done"]) == 9
    assert "Plan: 9 to create" in result.stderr  # the plan is still shown, on stderr
    again = reconciler("apply", "--auto-approve", "--format", "json", env=env, cwd=tmp_path)
    assert json.loads(again.stdout)["converged"] is True  # nothing to do: still JSON


def test_state_list_and_show_give_the_sids_connect_applets_dial(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    write(tmp_path / "manifests", BASE)
    env = environ(sandbox)
    assert reconciler("apply", "--auto-approve", env=env, cwd=tmp_path).returncode == 0
    [trunk] = live_trunks(sandbox)
    sid = trunk["trunk_sid"]
    listed = reconciler("state", "list", cwd=tmp_path, env={})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["demo/bot", sid, "applied"]
    shown = reconciler("state", "show", "bot", cwd=tmp_path, env={})
    assert f"  dial: sip:{sid}" in shown.stdout
    assert "  DID +918040264208 (mode flow)" in shown.stdout
    assert "  credential bot_user (password_version 1)" in shown.stdout
    document = json.loads(
        reconciler("state", "show", "bot", "--format", "json", cwd=tmp_path, env={}).stdout
    )
    assert document["sid"] == sid
    # Edited since the last apply: said so, and the values are the manifests'.
    write(tmp_path / "manifests", BASE.replace("bot_label", "other_label"))
    assert (
        "changed since the last apply" in reconciler("state", "list", cwd=tmp_path, env={}).stdout
    )
    missing = reconciler("state", "show", "nope", cwd=tmp_path, env={})
    assert missing.returncode == 1
    assert "no trunk named nope" in missing.stderr


def test_a_file_where_the_ledger_folder_should_be_is_named_before_any_request(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """``ledger: state/prod.json`` while ``manifests/state`` is a file: apply says which
    path is in the way and what would be right, like validate and plan, and sends nothing."""
    folder = write(tmp_path / "manifests", BASE)
    accounts = folder / "accounts.yaml"
    accounts.write_text(accounts.read_text() + "    ledger: state/prod.json\n")
    (folder / "state").write_text("not a folder\n")
    env = environ(sandbox)
    for args in (["apply", "--auto-approve"], ["apply", "--auto-approve", "--format", "json"]):
        result = reconciler(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert (
            "account demo: cannot create folder manifests/state for ledger "
            "manifests/state/prod.json: manifests/state is a file, not a folder; move or "
            "rename that file, or set the account's ledger: (manifests/accounts.yaml:8) to a "
            "path whose folders are free; nothing was sent to Exotel"
        ) in result.stderr
    document = json.loads(result.stdout)
    assert (document["outcome"], document["converged"]) == ("failed", False)
    assert sandbox.stats()["requests"] == 0
    assert (folder / "state").read_text() == "not a folder\n"  # left as it was
    planned = reconciler("plan", env=env, cwd=tmp_path)  # plan says the same thing
    assert planned.returncode == 1
    assert "manifests/state is a file, not a folder" in planned.stderr
