"""Saved plans prove themselves: their checksum, and a signature with the plan key.

The forgery these stop (docs/gitops.md): anyone who can push a branch can run a workflow
of their own that uploads a chosen ``plan.json`` under the name apply looks for. Without
the plan key, which only main's plan and apply jobs hold, such a plan is refused before
a ledger is read or Exotel is called (exit 3), and so is a plan edited after it was made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan import signing
from tests.estate import environ, live_trunks, write
from tests.sandboxes import Api, Sandbox
from tests.test_plan import BASE
from tests.test_plan_cli import reconciler

KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"
OTHER = "o" * 48


def _plan(document: dict[str, Any] | None = None) -> dict[str, Any]:
    actions = [{"address": "trunk/a", "kind": "create", "operation": "trunk.create"}]
    base = {"format_version": 1, "actions": actions, "accounts": []}
    base["checksum"] = signing.checksum([signing.saved_canonical(a) for a in actions])
    return {**base, **(document or {})}


def test_a_signed_plan_verifies_and_every_change_breaks_it() -> None:
    signed = signing.sign(_plan(), KEY)
    assert signing.verify(signed, name="p", key=KEY).accepted
    assert signing.verify(signed, name="p", key=None).accepted  # no key: checksum only
    edited = json.loads(json.dumps(signed))
    edited["notices"] = [{"message": "a note added later"}]  # outside the checksum
    verdict = signing.verify(edited, name="p", key=KEY)
    assert verdict.fault is signing.Fault.ALTERED
    assert "altered after it was signed" in verdict.message
    assert signing.verify(signed, name="p", key=OTHER).fault is signing.Fault.OTHER_KEY
    assert signing.verify(_plan(), name="p", key=KEY).fault is signing.Fault.UNSIGNED
    # Re-signing replaces the signature, it does not sign the old one.
    assert signing.sign(signed, KEY) == signed


def test_a_checksum_that_no_longer_matches_the_actions_is_altered() -> None:
    edited = _plan()
    edited["actions"][0]["after"] = {"alias": "+918040264299"}
    verdict = signing.verify(edited, name="plan.json", key=None)
    assert verdict.fault is signing.Fault.ALTERED
    assert "claims checksum" in verdict.message
    assert signing.verify({"actions": "x"}, name="p", key=None).fault is signing.Fault.NOT_A_PLAN


def test_short_keys_are_refused() -> None:
    assert signing.key_problem("short") is not None
    assert signing.key_problem(KEY) is None
    assert signing.key_id(KEY) != signing.key_id(OTHER)
    assert KEY not in signing.key_id(KEY)


@pytest.fixture
def planned(tmp_path: Path, sandbox: Sandbox, api: Api) -> tuple[Path, dict[str, str]]:
    del api
    write(tmp_path / "manifests", BASE)
    env = environ(sandbox, RECONCILER_PLAN_KEY=KEY)
    made = reconciler("plan", "--out", "plan.json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    assert document["signature"]["key_id"] == signing.key_id(KEY)
    assert KEY not in (tmp_path / "plan.json").read_text()
    return tmp_path, env


def _apply(folder: Path, env: dict[str, str]) -> Any:
    return reconciler("apply", "--plan", "plan.json", env=env, cwd=folder)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("unsigned", "is not signed, and RECONCILER_PLAN_KEY is set"),
        ("other-key", "is signed with another key"),
        ("notice", "altered after it was signed"),
        ("action", "altered after it was made"),
    ],
)
def test_apply_refuses_a_forged_plan_before_calling_exotel(
    planned: tuple[Path, dict[str, str]], sandbox: Sandbox, change: str, said: str
) -> None:
    folder, env = planned
    path = folder / "plan.json"
    document = json.loads(path.read_text())
    if change == "unsigned":
        del document["signature"]
    elif change == "other-key":
        document = signing.sign(document, OTHER)
    elif change == "notice":
        document["notices"].append({"kind": "rail", "message": "added by hand"})
    else:
        document["actions"].pop()
    path.write_text(json.dumps(document))
    before = sandbox.stats()["requests"]
    refused = _apply(folder, env)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert said in refused.stderr
    assert "Nothing was applied" in refused.stderr
    assert sandbox.stats()["requests"] == before  # not one call to Exotel
    assert live_trunks(sandbox) == []


def test_apply_takes_the_signed_plan(
    planned: tuple[Path, dict[str, str]], sandbox: Sandbox
) -> None:
    folder, env = planned
    applied = _apply(folder, env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert len(live_trunks(sandbox)) == 1


def test_an_edited_plan_is_refused_without_a_key_too(
    planned: tuple[Path, dict[str, str]], sandbox: Sandbox
) -> None:
    folder, env = planned
    del env["RECONCILER_PLAN_KEY"]
    path = folder / "plan.json"
    document = json.loads(path.read_text())
    document["actions"] = document["actions"][:1]
    path.write_text(json.dumps(document))
    refused = _apply(folder, env)
    assert refused.returncode == 3
    assert "altered after it was made" in refused.stderr
    assert live_trunks(sandbox) == []


def test_a_set_but_empty_key_is_an_error_not_a_downgrade(
    planned: tuple[Path, dict[str, str]],
) -> None:
    folder, env = planned
    for command in (("plan", "--out", "again.json"), ("apply", "--plan", "plan.json")):
        result = reconciler(*command, env={**env, "RECONCILER_PLAN_KEY": ""}, cwd=folder)
        assert result.returncode == 1, result.stderr
        assert "RECONCILER_PLAN_KEY is set but empty" in result.stderr
    short = reconciler(
        "plan", "--out", "again.json", env={**env, "RECONCILER_PLAN_KEY": "abc"}, cwd=folder
    )
    assert short.returncode == 1
    assert "at least 32" in short.stderr
    assert not (folder / "again.json").exists()


def test_on_github_the_plan_says_where_it_was_made(
    planned: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, env = planned
    event = tmp_path / "event.json"
    pull = {"number": 7, "head": {"sha": "a" * 40}, "base": {"ref": "main", "sha": "b" * 40}}
    event.write_text(json.dumps({"pull_request": pull}))
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_EVENT_NAME": "pull_request_target",
        "GITHUB_REPOSITORY": "acme/config",
        "GITHUB_WORKFLOW_SHA": "c" * 40,
        "GITHUB_WORKFLOW_REF": "acme/config/.github/workflows/plan.yml@refs/heads/main",
        "GITHUB_RUN_ID": "41",
        "GITHUB_RUN_ATTEMPT": "2",
    }
    made = reconciler("plan", "--out", "gh.json", env={**env, **github}, cwd=folder)
    assert made.returncode == 0, made.stderr
    document = json.loads((folder / "gh.json").read_text())
    assert document["source"]["pull_request"] == {
        "number": 7,
        "head_sha": "a" * 40,
        "base_ref": "main",
        "base_sha": "b" * 40,
    }
    assert document["source"]["workflow_sha"] == "c" * 40
    assert signing.verify(document, name="gh.json", key=KEY).accepted
    document["source"]["pull_request"]["base_ref"] = "x"  # the provenance is signed too
    assert signing.verify(document, name="gh.json", key=KEY).fault is signing.Fault.ALTERED
