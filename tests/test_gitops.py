"""GitOps in practice: the workflows' command lines, GitHub extras, drift and import."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from reconciler.cli import github
from reconciler.cli.main import build_parser
from tests.estate import PASSWORD, environ, live_trunks, seed, write
from tests.sandboxes import Api, Sandbox
from tests.test_plan import BASE
from tests.test_plan_cli import reconciler

WORKFLOWS = Path(__file__).parents[1] / ".github" / "workflows"


def workflow_commands() -> list[tuple[str, str]]:
    """(workflow file, command line) for every reconciler invocation in a run: step."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for job in document["jobs"].values():
            for step in job.get("steps", []):
                for raw in step.get("run", "").replace("\\\n", " ").splitlines():
                    line = raw.strip()
                    if re.match(r"(exec )?(\S+=\S+ )*reconciler ", line):
                        found.append((path.name, line))
    return found


SHELL_WORDS = {
    '"${plans[@]}"': "--plan reviewed/pr1/plan.json",
    "${AGAIN:+--again}": "--again",
    "2> >(tee plan.err >&2)": "",
    "|| status=$?": "",
}
VARIABLES = {  # what each variable a workflow passes holds, in the shape it has there
    "PR": "7",
    "HEAD_SHA": "a" * 40,
    "COMMIT": "b" * 40,
    "ACCOUNTS": '["demo"]',
    "PRS": "[]",
    "STATUS": "2",
    "GITHUB_RUN_ID": "7",
    "NOTE": "fork",
    "SHARDS": "[1, 3]",
    "SHARD_COUNT": "4",
    "SHARD": "3/4",
    "INDEX": "3",
    "COUNT": "4",
}


def _words(line: str) -> list[str]:
    for shell, word in SHELL_WORDS.items():
        line = line.replace(shell, word)
    line = re.sub(
        r'"\$(\w+)"|\$(\w+)',
        lambda m: shlex.quote(VARIABLES.get(m.group(1) or m.group(2), "x")),
        line,
    )
    return shlex.split(line)


def test_the_workflows_call_the_cli_as_it_is() -> None:
    commands = workflow_commands()
    assert len(commands) >= 10, commands  # a test that finds nothing would prove nothing
    parser = build_parser()
    for name, line in commands:
        words = _words(line)
        words = words[words.index("reconciler") + 1 :]
        for redirect in (">", "2>"):
            if redirect in words:
                words = words[: words.index(redirect)]
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{name}: the CLI no longer accepts: {line}")


def test_the_workflows_pin_actions_and_grant_least_privilege() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        document = yaml.safe_load(text)
        assert document["permissions"] in ({}, {"contents": "read"}), path.name
        for job_name, job in document["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {job_name} must say what it needs"
            job_text = yaml.safe_dump(job)
            if job["permissions"].get("contents") == "write":
                # Write access and production secrets never share a job.
                assert "secrets." not in job_text, f"{path.name}: {job_name}"
            for step in job.get("steps", []):
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}: {step}"
                # Values reach scripts through env, never pasted into the script.
                assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"
                if "SIP_PASSWORD" in yaml.safe_dump(step.get("env", {})):
                    assert "apply" in step.get("run", ""), f"{path.name}: {step.get('name')}"
        assert "secrets.GITHUB_TOKEN" not in text  # the built-in token, least privilege
    apply = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    assert apply["jobs"]["apply"]["environment"] == "production"
    assert apply["concurrency"]["cancel-in-progress"] is False
    assert "[skip ci]" not in (WORKFLOWS / "apply.yml").read_text().split("name: apply", 1)[1]


def github_env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "summary.md").write_text("")
    (tmp_path / "output.txt").write_text("")
    return {
        **environ(sandbox),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
    }


def parse_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` read the way the runner reads it: ``name=value`` or
    ``name<<DELIMITER`` ... ``DELIMITER``."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            else:
                raise AssertionError(f"output {name} never closed")
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def outputs(tmp_path: Path) -> dict[str, str]:
    values = parse_outputs((tmp_path / "output.txt").read_text())
    (tmp_path / "output.txt").write_text("")
    return values


def test_the_workflow_steps_end_to_end(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path / "manifests", BASE)
    env = github_env(sandbox, tmp_path)
    # plan.yml: validate, plan to markdown with the JSON kept
    assert reconciler("validate", "manifests", env=env, cwd=tmp_path).returncode == 0
    planned = reconciler(
        "plan", "manifests", "--format", "markdown", "--out", "plan.json", env=env, cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.startswith("<!-- reconciler-plan:demo -->")
    checksum = json.loads((tmp_path / "plan.json").read_text())["checksum"]
    assert f"checksum `{checksum}`" in planned.stdout
    assert outputs(tmp_path) == {
        "accounts": '["demo"]',  # validate's: the apply workflow's matrix
        "has_changes": "true",
        "checksum": checksum,
        "plan_path": "plan.json",
    }
    assert "<!-- reconciler-plan:demo -->" in (tmp_path / "summary.md").read_text()
    # apply.yml: the reviewed plan, one account
    applied = reconciler(
        "apply", "manifests", "--account", "demo", "--plan", "plan.json", env=env, cwd=tmp_path
    )
    assert applied.returncode == 0, applied.stderr
    assert outputs(tmp_path) == {"has_changes": "true", "checksum": checksum, "converged": "true"}
    assert "Converged" in (tmp_path / "summary.md").read_text()
    # drift.yml: nothing, then a change by hand
    quiet = reconciler("drift", "manifests", "--format", "markdown", env=env, cwd=tmp_path)
    assert quiet.returncode == 0
    assert outputs(tmp_path)["drift"] == "false"
    sid = live_trunks(sandbox)[0]["trunk_sid"]
    api.post(
        f"/trunks/{sid}/settings",
        {"settings": [{"name": "trunk_external_alias", "value": "+919999999999"}]},
    )
    drifted = reconciler("drift", "manifests", "--format", "markdown", env=env, cwd=tmp_path)
    assert drifted.returncode == 2
    assert drifted.stdout.startswith("<!-- reconciler-drift:demo -->")
    assert "| `demo/bot` | alias | alias +919999999999 -&gt; +918040264208 |" in drifted.stdout
    assert outputs(tmp_path)["drift"] == "true"
    # A broken manifest on a pull request: annotations on the diff.
    (folder / "trunks.yaml").write_text(
        (folder / "trunks.yaml").read_text().replace("13.126.40.0/24", "10.0.0.0/24")
    )
    invalid = reconciler("validate", "manifests", env=env, cwd=tmp_path)
    assert invalid.returncode == 1
    annotation = (
        "::error file=manifests/trunks.yaml,line=8,col=38,title=trunks[0].whitelisted_ips[1]"
    )
    assert f"{annotation}::10.0.0.0 is a private address" in invalid.stderr
    assert "10.0.0.0 is a private address" in (tmp_path / "summary.md").read_text()
    for secret in (PASSWORD, "demo_token"):
        assert secret not in (tmp_path / "summary.md").read_text()


def test_off_github_nothing_changes(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE.replace("13.126.40.0/24", "10.0.0.0/24"))
    result = reconciler("validate", "manifests", env=environ(sandbox), cwd=tmp_path)
    assert "::error" not in result.stdout + result.stderr


def test_annotations_leave_json_parseable(tmp_path: Path, sandbox: Sandbox) -> None:
    """apply.yml reads ``validate --format json``: a warning must not break that JSON."""
    write(tmp_path / "manifests", BASE.replace("13.126.40.0/24", "10.0.0.0/24"))
    env = github_env(sandbox, tmp_path)
    result = reconciler("validate", "manifests", "--format", "json", env=env, cwd=tmp_path)
    assert json.loads(result.stdout)["errors"] == 1
    assert "::error file=manifests/trunks.yaml" in result.stderr


def test_outputs_cannot_be_forged_by_a_value(tmp_path: Path) -> None:
    target = tmp_path / "output.txt"
    github.outputs(
        {"plan_path": "x\nhas_changes=false", "has_changes": "true"},
        {"GITHUB_OUTPUT": str(target)},
    )
    assert parse_outputs(target.read_text()) == {
        "plan_path": "x\nhas_changes=false",
        "has_changes": "true",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("mode", "phone_number +918040264208 changed by hand: mode flow -> pstn"),
        ("unmap", "phone_number +918040264209 removed by hand"),
        ("ip", "whitelisted_ip 13.126.40.0/24 removed by hand"),
        (
            "destination",
            "destination_uri sbc.example.com:5061;transport=tls changed by hand: priority 1 -> 9",
        ),
        ("alias", "alias removed by hand"),
        ("credential", "credential bot_user removed by hand"),
        ("rename", "trunk renamed by hand: bot -> by_hand"),
    ],
)
def test_each_kind_of_drift_is_named_then_gone_after_apply(
    tmp_path: Path, sandbox: Sandbox, api: Api, change: str, field: str
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    sid = seed(api, folder)["bot"]
    trunk = api.trunk(sid)
    if change == "mode":
        number = next(
            n for n in trunk.items("phone-numbers") if n["phone_number"] == "+918040264208"
        )
        trunk.put(
            f"phone-numbers/{number['id']}", {"phone_number": "+918040264208", "mode": "pstn"}
        )
    elif change == "unmap":
        number = next(
            n for n in trunk.items("phone-numbers") if n["phone_number"] == "+918040264209"
        )
        trunk.delete("phone-numbers", params={"id": number["id"]})
    elif change == "ip":
        entry = next(i for i in trunk.items("whitelisted-ips") if i["mask"] == 24)
        trunk.delete("whitelisted-ips", params={"id": entry["id"]})
    elif change == "destination":
        entry = next(d for d in trunk.items("destination-uris") if "sbc" in d["destination"])
        trunk.put(f"destination-uris/{entry['id']}", {"priority": 9})
    elif change == "alias":
        trunk.delete("settings", params={"name": "trunk_external_alias"})
    elif change == "credential":
        entry = trunk.items("credentials")[0]
        trunk.delete("credentials", params={"id": entry["id"]})
    else:
        api.put(f"/trunks/{sid}", {"trunk_name": "by_hand"})
    env = environ(sandbox)
    drifted = reconciler("drift", env=env, cwd=tmp_path)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert "demo/bot" in drifted.stdout
    assert f": {field}; apply would: " in drifted.stdout  # says what was done by hand
    assert reconciler("apply", "--auto-approve", env=env, cwd=tmp_path).returncode == 0
    assert reconciler("drift", env=env, cwd=tmp_path).returncode == 0


def test_drift_separates_pending_manifest_changes(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    seed(api, folder)
    write(folder, BASE.replace("mode: flow", "mode: pstn"))
    result = reconciler("drift", "--format", "json", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 0  # not drift: a change in git, not yet applied
    document = json.loads(result.stdout)
    assert (document["drift"], len(document["pending"]), document["unreadable"]) == (False, 1, [])


def test_a_manifest_edit_hides_no_hand_change_on_the_same_trunk(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    sid = seed(api, folder)["bot"]
    api.trunk(sid).whitelist("44.248.146.12")  # by hand
    write(folder, BASE.replace("mode: flow", "mode: pstn"))  # in git, not yet applied
    result = reconciler("drift", "--format", "json", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert [a["address"] for a in document["drifted"]] == [
        "demo/bot/whitelisted_ip/44.248.146.12/32"
    ]
    assert [a["address"] for a in document["pending"]] == ["demo/bot/phone_number/+918040264208"]


def test_legacy_ledgers_without_parts_tell_drift_per_trunk(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    sid = seed(api, folder)["bot"]
    ledger_file = folder / "state" / "demo.json"
    document = json.loads(ledger_file.read_text())
    del document["trunks"]["bot"]["parts"]
    ledger_file.write_text(json.dumps(document))
    api.trunk(sid).whitelist("44.248.146.12")
    assert reconciler("drift", env=environ(sandbox), cwd=tmp_path).returncode == 2


def test_drift_says_which_trunks_it_could_not_read(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    seed(api, folder)
    sandbox.faults({"method": "GET", "path": "*/credentials", "fault": "error_500", "count": 100})
    result = reconciler("drift", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not be checked:" in result.stdout
    assert "trunk bot" in result.stdout


@pytest.mark.parametrize("profile", ["full", "minimal"])
def test_import_round_trip(tmp_path: Path, sandbox: Sandbox, api: Api, profile: str) -> None:
    source = write(tmp_path / "source", BASE, profile=profile)
    sids = seed(api, source, record=False)
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "accounts.yaml").write_text((source / "accounts.yaml").read_text())
    target = sids["bot"] if profile == "full" else f"{sids['bot']}=bot"
    env = environ(sandbox)
    result = reconciler("import", "--account", "demo", "--trunk-sid", target, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"imported trunk bot ({sids['bot']}) -> manifests/bot.yaml" in result.stdout
    assert "SIP_PASSWORD_BOT_BOT_USER" in result.stdout
    written = yaml.safe_load((folder / "bot.yaml").read_text())["trunks"][0]
    assert written["credentials"] == [
        {
            "username": "bot_user",
            "password": "${SIP_PASSWORD_BOT_BOT_USER}",
            "password_version": 1,
            "friendly_name": "bot_label",
        }
    ]
    env["SIP_PASSWORD_BOT_BOT_USER"] = "Imported_pw_1"
    planned = reconciler("plan", "--format", "json", env=env, cwd=tmp_path)
    actions = json.loads(planned.stdout)["actions"]
    # Only the credential whose password the ledger cannot know; nothing else.
    assert [(a["address"], a["operation"]) for a in actions] == [
        (
            "demo/bot/credential/bot_user",
            "update_credential" if profile == "full" else "replace_credential",
        )
    ]
    # Not drift either: nobody changed anything by hand, the password is just unknown.
    drift = reconciler("drift", "--format", "json", env=env, cwd=tmp_path)
    assert drift.returncode == 0, drift.stdout
    assert [a["address"] for a in json.loads(drift.stdout)["pending"]] == [
        "demo/bot/credential/bot_user"
    ]
    refused = reconciler(
        "import", "--account", "demo", "--trunk-sid", target, env=env, cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "already declared" in refused.stderr


def test_import_all_takes_every_unmanaged_trunk(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    for name in ("one", "two"):
        api.trunk(api.create_trunk(name)).whitelist("44.248.146.11")
    folder = write(tmp_path / "manifests", "- name: keep\n  account: demo\n")
    result = reconciler("import", "--account", "demo", "--all", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.glob("*.yaml")) == [
        "accounts.yaml",
        "one.yaml",
        "trunks.yaml",
        "two.yaml",
    ]
    assert "A plan now should show no changes." in result.stdout
    planned = reconciler("plan", "--detailed-exitcode", env=environ(sandbox), cwd=tmp_path)
    # "keep" is declared but not created yet; the imported ones plan nothing.
    assert "demo/one" not in planned.stdout
    assert "demo/two" not in planned.stdout


def test_import_refuses_before_writing_anything(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    for name in ("aaa", "accounts"):  # "accounts" would be written over accounts.yaml
        api.create_trunk(name)
    folder = write(tmp_path / "manifests", "- name: keep\n  account: demo\n")
    before = sorted(p.name for p in folder.rglob("*") if p.is_file())
    env = environ(sandbox)
    refused = reconciler("import", "--account", "demo", "--all", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "accounts.yaml exists" in refused.stderr
    assert (
        sorted(p.name for p in folder.rglob("*") if p.is_file()) == before
    )  # not even aaa.yaml, no ledger
    forced = reconciler("import", "--account", "demo", "--all", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 1
    assert "holds more than trunk accounts: not overwritten" in forced.stderr
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == before


def test_import_force_never_declares_a_trunk_twice(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    api.create_trunk("keep")
    folder = write(tmp_path / "manifests", "- name: keep\n  account: demo\n")
    sid = live_trunks(sandbox)[0]["trunk_sid"]
    result = reconciler(
        "import", "--account", "demo", "--trunk-sid", sid, "--force",
        env=environ(sandbox), cwd=tmp_path,
    )  # fmt: skip
    # Declared already and not in the ledger: recorded there, never declared a second time.
    assert result.returncode == 0, result.stderr
    assert f"recorded trunk keep ({sid}), declared in" in result.stdout
    assert not (folder / "keep.yaml").exists()
    again = reconciler(
        "import", "--account", "demo", "--trunk-sid", sid, "--force",
        env=environ(sandbox), cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 1
    assert "trunk keep is declared in" in again.stderr
    assert not (folder / "keep.yaml").exists()


def test_import_gives_every_password_its_own_variable(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    for trunk, user in (("x_b", "c"), ("x", "b_c")):
        api.trunk(api.create_trunk(trunk)).post(
            "credentials", {"user_name": user, "password": "Secret_pw_1"}
        )
    write(tmp_path / "manifests", "- name: other\n  account: demo\n")
    result = reconciler("import", "--account", "demo", "--all", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    variables = re.findall(r"SIP_PASSWORD_\w+", result.stdout)
    assert sorted(variables) == ["SIP_PASSWORD_X_B_C", "SIP_PASSWORD_X_B_C_2"]


def test_every_job_that_reads_git_or_github_has_the_jobs_token() -> None:
    """state pull and push read the repository over HTTPS with GH_TOKEN (a private
    repository's checkout keeps no credentials), and every ci step calls GitHub's API with
    it: the job that runs one has it in its env."""
    found = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            runs = " ".join(str(s.get("run", "")) for s in job.get("steps", []))
            if re.search(r"reconciler (state pull|ci (?!known-hosts|gather))", runs):
                found += 1
                assert (job.get("env") or {}).get("GH_TOKEN") == "${{ github.token }}", (
                    path.name,
                    job_name,
                )
    assert found >= 6  # a test that finds nothing would prove nothing
