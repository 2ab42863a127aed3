"""The workflows' own steps, run here: each ``run:`` block of plan.yml and apply.yml
executed with bash as the runner would, against the sandbox, with ``GITHUB_*`` variables
and a local bare git remote standing in for GitHub. (The steps that call GitHub's API,
finding pull requests and posting comments, cannot run here; their inputs can.)"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests import sshd
from tests.estate import PASSWORD, TOKEN, environ, live_trunks, write
from tests.expressions import evaluate
from tests.sandboxes import Api, Sandbox
from tests.test_livekit_partner import ACCOUNTS, TRUNK
from tests.test_plan import BASE
from tests.test_trust import Listener, manifests_pointing_at

WORKFLOWS = Path(__file__).parents[1] / ".github" / "workflows"
BIN = str(Path(sys.executable).parent)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _steps(workflow: str, job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job][
        "steps"
    ]
    return steps


def step(workflow: str, job: str, name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / workflow).read_text())
    found: dict[str, Any] = next(s for s in document["jobs"][job]["steps"] if s.get("name") == name)
    return found


def run_step(
    workflow: str,
    job: str,
    name: str,
    *,
    cwd: Path,
    env: dict[str, str],
    background: bool = False,
) -> Any:
    """Run a step's script as GitHub's runner does: bash --noprofile --norc -eo pipefail."""
    script = step(workflow, job, name)["run"]
    full = {
        **os.environ,
        **GIT_ENV,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(cwd / "github_output"),
        "GITHUB_STEP_SUMMARY": str(cwd / "github_summary"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "origin",
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_ATTEMPT": "1",
        "GH_TOKEN": "not-a-token",
        **env,
    }
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
    if background:
        return subprocess.Popen(
            command, cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(
        command, cwd=cwd, env=full, capture_output=True, text=True, timeout=180, check=False
    )


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return result.stdout.strip()


class GitHub:
    """A bare remote with main, and fresh checkouts of it as each job would make."""

    def __init__(self, tmp_path: Path, sandbox: Sandbox) -> None:
        self.tmp = tmp_path
        self.sandbox = sandbox
        self.remote = tmp_path / "origin.git"
        git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(self.remote))
        seed = self.checkout("seed")
        write(seed / "manifests", BASE)
        (seed / ".gitignore").write_text("*.json.lock\n*.journal.jsonl\n*.applied\n")
        # The state key signs the ledger branch; main lists its public key.
        self.state_key, public = sshd.keypair(tmp_path, "state-key")
        (seed / ".github").mkdir()
        signers = f"reconciler-state {' '.join(public.split()[:2])}\n"
        (seed / ".github" / "reconciler-state.signers").write_text(signers)
        git(seed, "add", "-A")
        git(seed, "commit", "--quiet", "-m", "a trunk")
        git(seed, "push", "--quiet", "origin", "HEAD:main")
        self.commit = git(seed, "rev-parse", "HEAD")
        # GitHub keeps refs/pull/N/head for every pull request: #1's head is that commit.
        git(seed, "push", "--quiet", "origin", "HEAD:refs/pull/1/head")

    def checkout(self, name: str) -> Path:
        where = self.tmp / name
        if not (self.remote / "HEAD").exists():
            raise AssertionError("no remote")
        git(self.tmp, "clone", "--quiet", str(self.remote), str(where))
        return where

    def env(self, **extra: str) -> dict[str, str]:
        server = f"file://{self.tmp}"
        return {
            **environ(self.sandbox),
            "GITHUB_SERVER_URL": server,
            "RECONCILER_ALLOWED_HOSTS": urlsplit(self.sandbox.url).netloc,
            **extra,
        }


@pytest.fixture
def github(tmp_path: Path, sandbox: Sandbox, api: Api) -> GitHub:
    del api  # asked for its reset: every test starts from an empty sandbox
    return GitHub(tmp_path, sandbox)


def plan_job(github: GitHub) -> Path:
    """plan.yml's steps on a same-repository pull request: the plan kept for apply."""
    workspace = github.tmp / "plan-job"
    workspace.mkdir()
    env = github.env(RECONCILER_COMMIT=github.commit)  # the job's env names the head commit
    env.update(PR="1", HEAD_SHA=github.commit, BASE_REF="main")
    del env["SIP_PASSWORD"]  # plans are given the API key and token only
    merged = run_step(
        "plan.yml", "plan", "Merge the pull request onto main's tip (data, never run)",
        cwd=workspace, env=env,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    pulled = run_step(
        "plan.yml", "plan", "Take the ledgers from the state branch", cwd=workspace, env=env
    )
    assert pulled.returncode == 0, pulled.stderr
    planned = run_step("plan.yml", "plan", "Plan", cwd=workspace, env=env)
    assert planned.returncode == 0, planned.stderr
    assert "<!-- reconciler-plan:demo -->" in (workspace / "plan.md").read_text()
    assert "commit `" in (workspace / "plan.md").read_text()  # which commit, which run
    return workspace / "plan.json"


def apply_job(github: GitHub, name: str, reviewed: Path, **extra: str) -> tuple[Path, Any]:
    workspace = github.checkout(name)
    env = github.env(ACCOUNT="demo", COMMIT=github.commit, **extra)
    pulled = run_step("apply.yml", "apply", "Take the newest ledger", cwd=workspace, env=env)
    assert pulled.returncode == 0, pulled.stderr
    (workspace / "reviewed" / "pr1").mkdir(parents=True)
    shutil.copy(reviewed, workspace / "reviewed" / "pr1" / "plan.json")
    return workspace, env


def keep(workspace: Path, into: Path) -> Path:
    """What apply's upload step keeps: report.md and manifests' *.json and journals."""
    kept = into / "applied" / "apply-demo-7-1"
    kept.mkdir(parents=True)
    if (workspace / "report.md").exists():
        shutil.copy(workspace / "report.md", kept / "report.md")
    for pattern in ("*.json", "*.journal.jsonl"):
        for file in (workspace / "manifests").rglob(pattern):
            target = kept / file.relative_to(workspace)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
    return kept


def save_job(github: GitHub, name: str, workspace: Path) -> Any:
    save = github.checkout(name)
    keep(workspace, save)
    env = github.env(ACCOUNTS='["demo"]', COMMIT=github.commit, RUN_ID="7", RUN_ATTEMPT="1")
    # The known-hosts step's outputs, for a remote on disk (the SSH push: test_state_signing).
    (save / "known_hosts").write_text("")
    env.update(REMOTE=str(github.remote), RUNNER_TEMP=str(save))
    env["RECONCILER_STATE_KEY"] = github.state_key.read_text()
    return run_step("apply.yml", "save", "Save the ledgers on the state branch", cwd=save, env=env)


def test_plan_apply_save_and_a_rerun_through_the_workflow_steps(
    github: GitHub, sandbox: Sandbox
) -> None:
    reviewed = plan_job(github)
    workspace, env = apply_job(github, "apply-job", reviewed)
    applied = run_step("apply.yml", "apply", "Apply the reviewed plans", cwd=workspace, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    report = (workspace / "report.md").read_text()
    assert report.startswith("<!-- reconciler-apply:demo:applied -->")
    assert len(live_trunks(sandbox)) == 1

    saved = save_job(github, "save-job", workspace)
    assert saved.returncode == 0, saved.stderr
    tree = git(github.remote, "ls-tree", "-r", "--name-only", "reconciler-state").split()
    assert tree == ["manifests/state/demo.json", "manifests/state/demo.json.applied"]
    marker = git(github.remote, "show", "reconciler-state:manifests/state/demo.json.applied")
    assert marker == github.commit
    # The next pull request's plan reads that ledger from the branch (by URL): no changes.
    shutil.rmtree(github.tmp / "plan-job")
    plan_job(github)
    assert "No changes" in (github.tmp / "plan-job" / "plan.md").read_text()

    # The same merge again (a re-run, or a later run got there first): nothing is redone.
    again, env = apply_job(github, "apply-again", reviewed)
    rerun = run_step("apply.yml", "apply", "Apply the reviewed plans", cwd=again, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert (again / "report.md").read_text().startswith("<!-- reconciler-apply:demo:already -->")
    assert len(live_trunks(sandbox)) == 1


def test_two_queued_applies_from_one_base_both_land_their_ledgers(github: GitHub) -> None:
    reviewed = plan_job(github)
    first, env = apply_job(github, "first", reviewed)
    assert (
        run_step("apply.yml", "apply", "Apply the reviewed plans", cwd=first, env=env).returncode
        == 0
    )
    second, _ = apply_job(github, "second", reviewed)
    shutil.copytree(
        first / "manifests" / "state", second / "manifests" / "state", dirs_exist_ok=True
    )
    ledger = second / "manifests" / "state" / "demo.json"
    document = json.loads(ledger.read_text())
    document["trunks"]["bot"]["alias"] = "+918040264299"  # the second run's own change
    ledger.write_text(json.dumps(document))
    (second / "report.md").write_text("<!-- reconciler-apply:demo:applied -->\n")
    runs = [save_job(github, "save-first", first), save_job(github, "save-second", second)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    history = git(github.remote, "log", "--format=%H", "reconciler-state").split()
    assert len(history) == 2  # neither overwrote the other: both commits are there
    latest = git(github.remote, "show", "reconciler-state:manifests/state/demo.json")
    assert "+918040264299" in latest


def test_a_cancelled_apply_leaves_no_lock_in_git(github: GitHub, sandbox: Sandbox) -> None:
    reviewed = plan_job(github)
    workspace, env = apply_job(github, "apply-job", reviewed)
    sandbox.faults(
        {"method": "POST", "path": "*/credentials", "fault": "timeout_after_commit", "count": 1}
    )
    running = run_step(
        "apply.yml", "apply", "Apply the reviewed plans", cwd=workspace, env=env, background=True
    )
    journal = workspace / "manifests" / "state" / "demo.journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and "credential/bot_user" in journal.read_text():
            break
        time.sleep(0.05)
    running.send_signal(
        signal.SIGTERM
    )  # the runner cancelling the job (exec: it is the reconciler)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1, out + err
    assert not (workspace / "manifests" / "state" / "demo.json.lock").exists()
    assert (
        (workspace / "report.md")
        .read_text()
        .startswith("<!-- reconciler-apply:demo:interrupted -->")
    )
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert "apply.interrupted" in events
    saved = save_job(github, "save-job", workspace)
    assert saved.returncode == 0, saved.stderr
    tree = git(github.remote, "ls-tree", "-r", "--name-only", "reconciler-state").split()
    assert tree == ["manifests/state/demo.json"]  # no lock, no journal; not marked applied
    sandbox.faults()


def test_a_foreign_base_url_in_a_pull_request_never_receives_credentials(
    github: GitHub,
) -> None:
    listener = Listener()
    try:
        workspace = github.tmp / "plan-job"
        manifests_pointing_at(
            workspace / "proposed" / "manifests", f"http://127.0.0.1:{listener.port}"
        )
        env = {
            "EXOTEL_API_KEY": "prod_key",
            "EXOTEL_API_TOKEN": "prod_token_canary",
            "EXOTEL_BASE_URL": "",
        }
        planned = run_step("plan.yml", "plan", "Plan", cwd=workspace, env=env)
        assert planned.returncode == 1
        assert "refusing to send its API credentials" in (workspace / "plan.err").read_text()
        assert listener.received == b""
    finally:
        listener.close()


ONE_SHARD = {"SHARD": "1/1", "INDEX": "1"}  # the drift job's env, with one shard


# -- LiveKit's key and secret ---------------------------------------------------------

LIVEKIT_SECRETS = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
# The steps that call LiveKit's API (plan, apply, drift), each in its job's environment.
LIVEKIT_STEPS = {
    ("plan.yml", "plan", "Plan"): "exotel-plan",
    ("apply.yml", "reviewed", "Plan a manual run (reviewed before the apply job starts)"): (
        "exotel-plan"
    ),
    ("apply.yml", "apply", "Apply the reviewed plans"): "production",
    ("drift.yml", "drift", "Look for drift"): "exotel-plan",
}
# What the environments hold, as the secrets context gives it; LiveKit's pair is the
# sandbox's default (devkey:secret, as `livekit-server --dev` has).
ENVIRONMENT_SECRETS = {
    "EXOTEL_API_KEY": "demo_key",
    "EXOTEL_API_TOKEN": TOKEN,
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret",
    "SIP_PASSWORDS": f"SIP_PASSWORD={PASSWORD}\n",
    "RECONCILER_PLAN_KEY": "0123456789abcdef" * 4,
}
SECRET_VARIABLES = (
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "RECONCILER_PLAN_KEY",
    "RECONCILER_SECRETS",
)


def _steps_reading(secret: str) -> set[tuple[str, str, str]]:
    found = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for each in job.get("steps", []):
                if f"secrets.{secret}" in yaml.safe_dump(each):
                    found.add((path.name, job_name, each.get("name", "")))
    return found


def secret_env(workflow: str, job: str, name: str, secrets: dict[str, str]) -> dict[str, str]:
    """The variables a step's env gives it from ``secrets.NAME``, evaluated as the runner
    does with ``secrets`` as the secrets context (a secret that is not set is '')."""
    given = {}
    for variable, value in (step(workflow, job, name).get("env") or {}).items():
        if "secrets." in str(value):
            given[variable] = str(evaluate(str(value), {"secrets": secrets}) or "")
    return given


def test_livekit_secrets_go_where_exotels_api_key_goes_and_nowhere_else() -> None:
    """LIVEKIT_API_KEY and LIVEKIT_API_SECRET: optional workflow_call secrets of plan.yml,
    apply.yml and drift.yml, in the env of exactly the steps that run plan, apply and
    drift (the steps that get EXOTEL_API_KEY), in those jobs' environments; never in a
    job's or workflow's env, never in the jobs that write the state branch, comment or
    probe. No workflow sets LIVEKIT_URL (it would point every LiveKit partner at one
    project) or RECONCILER_ALLOWED_HOSTS (in CI LiveKit's secret goes to LiveKit Cloud)."""
    for name in ("plan.yml", "apply.yml", "drift.yml"):
        declared = yaml.safe_load((WORKFLOWS / name).read_text())[True]["workflow_call"]["secrets"]
        for secret in LIVEKIT_SECRETS:
            assert declared[secret]["required"] is False, (name, secret)
    assert _steps_reading("EXOTEL_API_KEY") == set(LIVEKIT_STEPS)
    for secret in LIVEKIT_SECRETS:
        assert _steps_reading(secret) == set(LIVEKIT_STEPS), secret
    for (workflow, job, name), environment in LIVEKIT_STEPS.items():
        document = yaml.safe_load((WORKFLOWS / workflow).read_text())
        assert document["jobs"][job]["environment"] == environment, (workflow, job)
        env = step(workflow, job, name)["env"]
        for secret in LIVEKIT_SECRETS:
            assert env[secret] == f"${{{{ secrets.{secret} }}}}", (workflow, name, secret)
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        assert "secrets." not in yaml.safe_dump(document.get("env", {})), path.name
        for job_name, job in document["jobs"].items():
            assert "secrets." not in yaml.safe_dump(job.get("env", {})), (path.name, job_name)
        for variable in ("LIVEKIT_URL", "RECONCILER_ALLOWED_HOSTS"):
            assert variable not in path.read_text(), (path.name, variable)


def _main_names_a_livekit_partner(github: GitHub) -> None:
    """A merged change on main: the trunk's LiveKit end, with refs/pull/1/head at it."""
    seed = github.checkout("livekit-seed")
    shutil.rmtree(seed / "manifests")
    (seed / "manifests").mkdir()
    (seed / "manifests" / "accounts.yaml").write_text(ACCOUNTS)
    (seed / "manifests" / "trunks.yaml").write_text(TRUNK)
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "the bot's LiveKit end")
    git(seed, "push", "--quiet", "origin", "HEAD:main", "HEAD:refs/pull/1/head")
    github.commit = git(seed, "rev-parse", "HEAD")


def _without_secrets(env: dict[str, str]) -> dict[str, str]:
    """The test environment without the credentials a step's env is to give it."""
    for variable in (*SECRET_VARIABLES, "SIP_PASSWORD", "LIVEKIT_URL"):
        env.pop(variable, None)
    return env


def _livekit_env(
    github: GitHub, workflow: str, job: str, name: str, **extra: str
) -> dict[str, str]:
    """The job's environment: the runner's, plus what the step's env gives it from the
    environment's secrets, and the sandbox standing in for LiveKit Cloud (LIVEKIT_URL)."""
    env = _without_secrets(github.env(**extra))
    env["LIVEKIT_URL"] = github.sandbox.url
    return {**env, **secret_env(workflow, job, name, ENVIRONMENT_SECRETS)}


def _livekit_objects(sandbox: Sandbox) -> dict[str, int]:
    from livekit import api as livekit  # noqa: PLC0415

    async def count() -> dict[str, int]:
        async with livekit.LiveKitAPI(sandbox.url, "devkey", "secret") as lk:
            sip = lk.sip
            return {
                "inbound": len(
                    (await sip.list_inbound_trunk(livekit.ListSIPInboundTrunkRequest())).items
                ),
                "outbound": len(
                    (await sip.list_outbound_trunk(livekit.ListSIPOutboundTrunkRequest())).items
                ),
                "rules": len(
                    (await sip.list_dispatch_rule(livekit.ListSIPDispatchRuleRequest())).items
                ),
            }

    return asyncio.run(count())


def _delete_the_dispatch_rule(sandbox: Sandbox) -> None:
    from livekit import api as livekit  # noqa: PLC0415

    async def delete() -> None:
        async with livekit.LiveKitAPI(sandbox.url, "devkey", "secret") as lk:
            request = livekit.ListSIPDispatchRuleRequest()
            [rule] = (await lk.sip.list_dispatch_rule(request)).items
            await lk.sip.delete_dispatch_rule(
                livekit.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id)
            )

    asyncio.run(delete())


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # devkey's secret
def test_livekit_secrets_reach_plan_apply_and_drift_through_the_workflow_steps(
    github: GitHub, sandbox: Sandbox
) -> None:
    """A trunk with a LiveKit partner, through plan.yml's, apply.yml's and drift.yml's own
    steps, each given only what its env maps from the environment's secrets: the plan
    shows LiveKit's end, apply builds it, drift reads it back; without the LiveKit secrets
    the plan stops before any call and says which is missing."""
    _main_names_a_livekit_partner(github)
    workspace = github.tmp / "plan-job"
    workspace.mkdir()
    plan_env = _livekit_env(github, "plan.yml", "plan", "Plan", RECONCILER_COMMIT=github.commit)
    plan_env.update(PR="1", HEAD_SHA=github.commit, BASE_REF="main")
    assert "SIP_PASSWORD" not in plan_env  # a plan is never given a SIP password
    for name in ("Merge the pull request onto main's tip (data, never run)",
                 "Take the ledgers from the state branch"):  # fmt: skip
        ran = run_step("plan.yml", "plan", name, cwd=workspace, env=plan_env)
        assert ran.returncode == 0, ran.stderr

    # A config repository that has not created the LiveKit secrets: '' for each.
    others = {k: v for k, v in ENVIRONMENT_SECRETS.items() if k not in LIVEKIT_SECRETS}
    without = {**plan_env, **secret_env("plan.yml", "plan", "Plan", others)}
    missing = run_step("plan.yml", "plan", "Plan", cwd=workspace, env=without)
    assert missing.returncode == 1
    assert "environment variable LIVEKIT_API_KEY is set but empty" in missing.stderr
    assert "EXOTEL_API_KEY" not in missing.stderr
    assert _livekit_objects(sandbox) == {"inbound": 0, "outbound": 0, "rules": 0}

    planned = run_step("plan.yml", "plan", "Plan", cwd=workspace, env=plan_env)
    assert planned.returncode == 0, planned.stderr
    shown = (workspace / "plan.md").read_text()
    assert shown.count("| `+` | livekit_") == 3, shown  # inbound, dispatch rule, outbound

    apply_workspace, _ = apply_job(github, "apply-job", workspace / "plan.json")
    apply_env = _livekit_env(
        github, "apply.yml", "apply", "Apply the reviewed plans", ACCOUNT="demo",
        COMMIT=github.commit,
    )  # fmt: skip
    applied = run_step(
        "apply.yml", "apply", "Apply the reviewed plans", cwd=apply_workspace, env=apply_env
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert _livekit_objects(sandbox) == {"inbound": 1, "outbound": 1, "rules": 1}
    saved = save_job(github, "save-job", apply_workspace)
    assert saved.returncode == 0, saved.stderr

    drift_workspace = github.checkout("drift-job")
    drift_env = _livekit_env(github, "drift.yml", "drift", "Look for drift", **ONE_SHARD)
    pulled = run_step(
        "drift.yml", "drift", "Take the ledgers from the state branch", cwd=drift_workspace,
        env=drift_env,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    drifted = run_step("drift.yml", "drift", "Look for drift", cwd=drift_workspace, env=drift_env)
    assert drifted.returncode == 0, drifted.stdout + drifted.stderr
    assert (drift_workspace / "drift-1.status").read_text() == "0\n"

    _delete_the_dispatch_rule(sandbox)  # by hand, on LiveKit
    again = run_step("drift.yml", "drift", "Look for drift", cwd=drift_workspace, env=drift_env)
    assert again.returncode == 0, again.stdout + again.stderr  # drift found is not a failure
    assert (drift_workspace / "drift-1.status").read_text() == "2\n"
    assert "livekit_dispatch_rule" in (drift_workspace / "drift-1.md").read_text()


def test_a_pull_request_cannot_send_livekits_secret_elsewhere(github: GitHub) -> None:
    """plan.yml gives the Plan step LiveKit's secret; a pull request that points the
    partner's url at another host gets a refusal before any byte is sent."""
    listener = Listener()
    try:
        workspace = github.tmp / "plan-job"
        proposed = workspace / "proposed" / "manifests"
        proposed.mkdir(parents=True)
        url = f"http://127.0.0.1:{listener.port}"
        (proposed / "accounts.yaml").write_text(
            ACCOUNTS.replace("https://blr-voicebot.livekit.cloud", url)
        )
        (proposed / "trunks.yaml").write_text(TRUNK)
        env = _without_secrets(github.env())  # no LIVEKIT_URL: the manifest's url counts
        env.update(secret_env("plan.yml", "plan", "Plan", ENVIRONMENT_SECRETS))
        assert env["LIVEKIT_API_SECRET"] == "secret"
        planned = run_step("plan.yml", "plan", "Plan", cwd=workspace, env=env)
        assert planned.returncode == 1
        assert (
            f"refusing to send LiveKit API requests to {url}"
            in (workspace / "plan.err").read_text()
        )
        assert listener.received == b""
    finally:
        listener.close()


# -- Called from a team's config repository ---------------------------------------------

EXAMPLE = Path(__file__).parents[1] / "examples" / "config-repo"
CALLERS = sorted((EXAMPLE / ".github" / "workflows").glob("*.yml"))
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")


def _permissions(document: dict[str, Any]) -> dict[str, str]:
    """The union of what a workflow's jobs ask for (write wins over read)."""
    union: dict[str, str] = {}
    for job in document["jobs"].values():
        for scope, level in (job.get("permissions") or {}).items():
            if union.get(scope) != "write":
                union[scope] = level
    return union


def _called(job: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    repository, _, commit = job["uses"].partition("@")
    name = repository.rsplit("/", 1)[1]
    return commit, yaml.safe_load((WORKFLOWS / name).read_text())


def test_every_secret_a_called_workflow_uses_can_reach_it() -> None:
    """In a workflow_call job the secrets context holds only what the caller passes or
    inherits (docs/gitops.md): a secrets.NAME the callee reads must be declared under
    on.workflow_call.secrets, and each caller must pass it (inherit, or by name)."""
    checked = 0
    for caller_path in CALLERS:
        caller = yaml.safe_load(caller_path.read_text())
        for job in caller["jobs"].values():
            _, called = _called(job)
            declared = (called[True]["workflow_call"] or {}).get("secrets") or {}
            used = set(SECRET.findall(yaml.safe_dump(called["jobs"]))) - {"GITHUB_TOKEN"}
            passed = job.get("secrets")
            for name in sorted(used):
                checked += 1
                assert name in declared, f"{caller_path.name}: {name} is not declared"
                assert passed == "inherit" or name in (passed or {}), (caller_path.name, name)
    # Exotel's key and token, the plan key, SIP_PASSWORDS, the state key, LiveKit's key and
    # secret, across plan.yml, apply.yml and drift.yml.
    assert checked >= 17  # a test that finds nothing would prove nothing


def test_a_config_repository_calls_each_workflow_pinned_by_commit() -> None:
    assert {path.name for path in CALLERS} == {"plan.yml", "apply.yml", "drift.yml", "queue.yml"}
    for path in CALLERS:
        caller = yaml.safe_load(path.read_text())
        [job] = caller["jobs"].values()
        commit, called = _called(job)
        assert re.fullmatch(r"[0-9a-f]{40}", commit), path.name
        # Nothing to repeat (the callee installs its own commit): only the inputs it declares.
        declared = (called[True].get("workflow_call") or {}).get("inputs") or {}
        assert set(job.get("with", {})) <= set(declared), path.name
        assert job["cache-mode"] == "none"
        assert caller["permissions"] == {}
        for scope, level in _permissions(called).items():
            granted = job["permissions"]
            assert scope in granted, (path.name, scope)
            assert level == "read" or granted[scope] == "write", (path.name, scope)
        # The called workflow holds the group: the same group here would deadlock.
        assert "concurrency" not in caller
        assert set(caller[True]) <= set(called[True])


def test_the_reconciler_that_runs_is_this_workflows_commit_hash_checked() -> None:
    """Every job installs the reconciler from the commit of the workflow that is running
    (job.workflow_sha: the called workflow's own, not the caller's), dependencies and
    build backend from the hashed lock, the project without build isolation."""
    installs = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            steps = job.get("steps", [])
            runs = [step.get("run", "") for step in steps]
            if not any("reconciler " in run for run in runs):
                continue
            [checkout] = [s for s in steps if s.get("with", {}).get("path") == ".reconciler"]
            assert checkout["with"]["repository"] == "${{ job.workflow_repository }}"
            assert checkout["with"]["ref"] == "${{ job.workflow_sha }}"
            [install] = [
                s for s in steps if s.get("name") == "Install the reconciler (hash-checked)"
            ]
            assert install["run"].splitlines() == [
                "python -m pip install --require-hashes --only-binary :all: --no-deps "
                "-r .reconciler/requirements.lock",
                "python -m pip install --no-deps --no-build-isolation ./.reconciler",
            ], f"{path.name}: {name}"
            installs += 1
    assert installs >= 8


def test_the_workflows_are_thin() -> None:
    """The logic lives in tested commands: no github-script, no long scripts."""
    for path in [*sorted(WORKFLOWS.glob("*.yml")), *CALLERS]:
        text = path.read_text()
        assert "actions/github-script" not in text, path.name
        for job in yaml.safe_load(text)["jobs"].values():
            for step in job.get("steps", []):
                lines = step.get("run", "").strip().splitlines()
                assert len(lines) <= 12, f"{path.name}: {step.get('name')} has {len(lines)} lines"


def test_each_event_reports_one_check_named_plan() -> None:
    """A required check named plan: plan.yml on pull requests, queue.yml on merge groups,
    one job each, never a skipped twin that reports success."""
    plan = yaml.safe_load((WORKFLOWS / "plan.yml").read_text())
    queue = yaml.safe_load((WORKFLOWS / "queue.yml").read_text())
    assert list(plan["jobs"]) == ["plan"]
    assert list(queue["jobs"]) == ["plan"]
    assert "merge_group" not in plan[True]
    assert "pull_request_target" not in queue[True]
    for document in (plan, queue):
        assert "if" not in document["jobs"]["plan"]
        assert "name" not in document["jobs"]["plan"]


def test_the_constraints_pin_every_runtime_dependency_as_tested() -> None:
    """constraints.txt covers the reconciler's runtime dependencies and theirs, each at
    the version the tests ran with."""
    from importlib import metadata  # noqa: PLC0415

    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    lines = (Path(__file__).parents[1] / "constraints.txt").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    needed: set[str] = set()
    todo = ["exotel-reconciler"]
    while todo:
        for text in metadata.distribution(todo.pop()).requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in needed:
                needed.add(name)
                todo.append(name)
    assert needed <= set(pinned), sorted(needed - set(pinned))
    for name in needed:
        assert metadata.version(name) == pinned[name], name


def test_sip_passwords_arrive_as_one_secret_of_lines(github: GitHub) -> None:
    """The apply step gets SIP_PASSWORDS (NAME=value lines) as RECONCILER_SECRETS; no
    SIP_PASSWORD_... name of any one estate is written in the workflow."""
    reviewed = plan_job(github)
    env_broken = github.env(ACCOUNT="demo", COMMIT=github.commit, SIP_PASSWORD="")
    env_broken["RECONCILER_SECRETS"] = f"SIP_PASSWORD={PASSWORD}\n{PASSWORD}\n"
    workspace, env = apply_job(github, "called", reviewed, SIP_PASSWORD="")
    broken = run_step(
        "apply.yml", "apply", "Apply the reviewed plans", cwd=workspace, env=env_broken
    )
    assert broken.returncode == 1
    assert "RECONCILER_SECRETS: line 2 is not NAME=value" in broken.stderr
    assert PASSWORD not in broken.stdout + broken.stderr
    env["RECONCILER_SECRETS"] = f"# one line a password\n\nSIP_PASSWORD={PASSWORD}\n"
    result = run_step("apply.yml", "apply", "Apply the reviewed plans", cwd=workspace, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(t["credentials"] for t in live_trunks(github.sandbox))
    assert "SIP_PASSWORD_" not in (WORKFLOWS / "apply.yml").read_text()


def _group(event: str, **pull_request: Any) -> Any:
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    github = {"event_name": event, "run_id": "31", "event": {"pull_request": pull_request}}
    return evaluate(document["concurrency"]["group"], {"github": github})


def test_only_a_merge_takes_the_apply_concurrency_group() -> None:
    """Closing an unmerged pull request (anyone's, a fork's) must not replace the pending
    apply of a real merge: only merges and manual runs share the group, and runs queue."""
    merged = _group("pull_request_target", merged=True)
    assert merged == _group("workflow_dispatch")
    unmerged = _group("pull_request_target", merged=False)
    assert unmerged != merged
    assert unmerged == "reconciler-apply-unmerged-31"
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    assert document["concurrency"]["cancel-in-progress"] is False
    assert document["concurrency"]["queue"] == "max"


def test_the_expression_evaluator_follows_githubs_rules() -> None:
    contexts = {"github": {"event": {"n": 0}, "name": "Main"}}
    assert evaluate("${{ github.name == 'main' }}", contexts) is True  # case-insensitive
    assert evaluate("${{ github.missing || 'fallback' }}", contexts) == "fallback"
    assert evaluate("${{ github.event.n && 'x' || 'y' }}", contexts) == "y"
    assert evaluate("${{ !github.missing }}", contexts) is True
    assert evaluate("a-${{ format('{0}-{1}', 'b', github.name) }}", contexts) == "a-b-Main"


def test_actionlint_runs_shellcheck_over_run_scripts(tmp_path: Path) -> None:
    """make workflows passes -shellcheck: without the binary actionlint would skip the
    scripts silently and still pass."""
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "bad.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo $UNQUOTED\n"
    )
    shellcheck = Path(BIN) / "shellcheck"
    result = subprocess.run(
        [str(Path(BIN) / "actionlint"), f"-shellcheck={shellcheck}", str(folder / "bad.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "SC2086" in result.stdout
    assert "-shellcheck=$(BIN)/shellcheck" in (Path(__file__).parents[1] / "Makefile").read_text()


def test_the_project_metadata_uses_current_forms() -> None:
    """The license is an SPDX expression (PEP 639), not the table setuptools deprecates
    and warns about on every install."""
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)
    assert not any(c.startswith("License ::") for c in project["project"].get("classifiers", []))


# -- drift over many accounts: a matrix of shards, one issue, one save ---------------

SHARDED = ("north", "south", "east", "west")


def _accounts_of_many(github: GitHub) -> dict[str, str]:
    """Main declares four accounts, a trunk each, each account with its own key and token
    (as Exotel gives them); returns the variables that hold those."""
    seed = github.checkout("sharded-seed")
    shutil.rmtree(seed / "manifests")
    (seed / "manifests").mkdir()
    accounts, trunks, secrets = ["accounts:"], ["trunks:"], {}
    for n, name in enumerate(SHARDED):
        accounts += [
            f"  {name}:",
            f"    sid: {name}",
            f"    api_key: ${{KEY_{name.upper()}}}",
            f"    api_token: ${{TOKEN_{name.upper()}}}",
        ]
        trunks += [
            f"  - name: {name}_bot",
            f"    account: {name}",
            f'    phone_numbers: ["+91804026420{n}"]',
            f"    whitelisted_ips: [44.248.146.{n + 1}]",
        ]
        secrets |= {f"KEY_{name.upper()}": f"key_{name}", f"TOKEN_{name.upper()}": f"tok_{name}"}
    (seed / "manifests" / "accounts.yaml").write_text("\n".join(accounts) + "\n")
    (seed / "manifests" / "trunks.yaml").write_text("\n".join(trunks) + "\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "four accounts")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    github.commit = git(seed, "rev-parse", "HEAD")
    return secrets


def _upload(workflow: str, job: str, name: str, workspace: Path, into: Path, **context: Any) -> str:
    """What an upload-artifact step keeps: its ``path`` globs, evaluated with ``context``
    as the runner would, copied from the workspace (their common root) into a folder named
    as the step names the artifact, as download-artifact lays out each artifact."""
    given = step(workflow, job, name)["with"]
    artifact = str(evaluate(given["name"], context))
    for line in str(given["path"]).splitlines():
        for found in workspace.glob(str(evaluate(line, context))):
            target = into / artifact / found.relative_to(workspace)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(found, target)
    return artifact


def test_drift_fans_out_over_shards_into_one_issue_and_one_save(tmp_path: Path) -> None:
    """drift.yml's own steps: the shards job splits four accounts over four shards, each
    drift job pulls and drifts only its shard's accounts and keeps its report; the issue
    job takes each shard's newest attempt and opens one issue naming the account changed
    by hand and the shard that kept nothing; the save job pushes the records of the
    shards that kept theirs and leaves the others' as they were."""
    from reconciler.pipeline.accounts import shard_of  # noqa: PLC0415
    from tests.github_double import serving  # noqa: PLC0415
    from tests.sandboxes import running  # noqa: PLC0415

    accounts = [a for name in SHARDED for a in ("--account", f"{name}:key_{name}:tok_{name}")]
    with running("--rate-limit", "0", *accounts, log_path=tmp_path / "sandbox.log") as sandbox:
        github = GitHub(tmp_path, sandbox)
        secrets = _accounts_of_many(github)
        env = {**github.env(**secrets), "RECONCILER_STATE_KEY": github.state_key.read_text()}
        # Applied and saved as the apply workflow would: every account has a signed ledger.
        setup = github.checkout("setup")
        (setup / "known_hosts").write_text("")
        for argv in (
            ["apply", "manifests", "--auto-approve"],
            ["state", "push", "manifests", "--remote", str(github.remote),
             "--known-hosts", "known_hosts", "--require-signed"],
        ):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "reconciler", *argv], cwd=setup, capture_output=True,
                text=True, env={**os.environ, **GIT_ENV, **env}, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr

        # The shards job: which of four shards hold the accounts.
        split = github.checkout("shards-job")
        ran = run_step(
            "drift.yml", "shards", "Split the accounts into shards", cwd=split,
            env={**env, "SHARD_COUNT": "4"},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        said = outputs(split / "github_output")
        owner = {name: shard_of(name, 4) for name in SHARDED}
        shards = json.loads(said["shards"])
        assert shards == sorted(set(owner.values())), owner
        assert said["shard_count"] == "4"
        assert len(shards) >= 2  # else the test proves little

        # Someone whitelists an address on north's trunk by hand.
        ledger = json.loads((setup / "manifests" / "state" / "north.json").read_text())
        north = Api(sandbox.client(auth=("key_north", "tok_north")), "north")
        north.trunk(ledger["trunks"]["north_bot"]["sid"]).whitelist("52.66.10.7")

        kept = tmp_path / "kept"
        for index in shards:
            workspace = github.checkout(f"drift-{index}")
            shard_env = {**env, "SHARD": f"{index}/4", "INDEX": str(index)}
            for name in ("Take the ledgers from the state branch", "Look for drift"):
                ran = run_step("drift.yml", "drift", name, cwd=workspace, env=shard_env)
                assert ran.returncode == 0, ran.stdout + ran.stderr
            mine = {a for a in SHARDED if owner[a] == index}
            ledgers = {p.name.split(".")[0] for p in (workspace / "manifests" / "state").iterdir()}
            assert ledgers == mine  # no two jobs touch one account
            status = (workspace / f"drift-{index}.status").read_text().strip()
            assert status == ("2" if "north" in mine else "0")
            # north's shard failed once and passed when re-run: attempt 2 is the one kept.
            attempt = "2" if "north" in mine else "1"
            context = {
                "matrix": {"shard": index},
                "github": {"run_id": "7", "run_attempt": attempt},
            }
            _upload("drift.yml", "drift", "Keep the report and when each trunk was checked",
                    workspace, kept, **context)  # fmt: skip
        # What the issue and save jobs download is what the drift jobs kept.
        for job in ("issue", "save"):
            fetch = next(
                s for s in _steps("drift.yml", job) if "download-artifact" in s.get("uses", "")
            )
            pattern = str(evaluate(fetch["with"]["pattern"], {"github": {"run_id": "7"}}))
            assert all(fnmatch.fnmatch(p.name, pattern) for p in kept.iterdir()), pattern
        (kept / f"drift-shard{owner['north']}-7-1").mkdir()
        (kept / f"drift-shard{owner['north']}-7-1" / f"drift-{owner['north']}.status").write_text(
            "1"
        )
        lost = next(i for i in shards if i != owner["north"])  # its artifact never arrived
        shutil.rmtree(kept / f"drift-shard{lost}-7-1")

        # The issue job: one issue, from every shard's newest attempt.
        with serving() as double:
            workspace = tmp_path / "issue-job"
            shutil.copytree(kept, workspace / "kept")
            issue_env = {
                **double.env(GITHUB_RUN_ID="7"),
                "SHARDS": json.dumps(shards),
                "COUNT": "4",
            }
            for name in (
                "Take each shard's newest attempt",
                "Open, update or close the drift issue",
            ):
                ran = run_step("drift.yml", "issue", name, cwd=workspace, env=issue_env)
                assert ran.returncode == 0, ran.stdout + ran.stderr
            [opened] = double.state.issues.values()
            body = opened["body"]
            assert opened["state"] == "open", opened
            assert "north/north_bot" in body, body
            assert "52.66.10.7" in body, body
            assert f"shard {lost}/4 could not look" in body, body
            assert f"Drift in shard {owner['north']}/4" in body, body

        # The save job: the records of every shard that kept them, signed.
        workspace = github.checkout("save-job")
        shutil.copytree(kept, workspace / "kept")
        (workspace / "known_hosts").write_text("")
        save_env = {**env, "REMOTE": str(github.remote), "RUNNER_TEMP": str(workspace)}
        for name in ("Take each shard's newest attempt", "Save when each trunk was checked"):
            ran = run_step("drift.yml", "save", name, cwd=workspace, env=save_env)
            assert ran.returncode == 0, ran.stdout + ran.stderr
        tree = git(github.remote, "ls-tree", "-r", "--name-only", "reconciler-state").split()
        records = {Path(p).name.split(".")[0] for p in tree if p.endswith(".checked.json")}
        assert records == {a for a in SHARDED if owner[a] != lost}
        assert "not checked" in ran.stdout


def outputs(path: Path) -> dict[str, str]:
    """Parse GITHUB_OUTPUT's NAME<<DELIMITER blocks."""
    found, lines = {}, path.read_text().splitlines() if path.exists() else []
    while lines:
        name, _, delimiter = lines.pop(0).partition("<<")
        end = lines.index(delimiter)
        found[name] = "\n".join(lines[:end])
        lines = lines[end + 1 :]
    return found
