"""The workflows' own steps, run here: each ``run:`` block of plan.yml and apply.yml
executed with bash as the runner would, against the sandbox, with ``GITHUB_*`` variables
and a local bare git remote standing in for GitHub. (The steps that call GitHub's API,
finding pull requests and posting comments, cannot run here; their inputs can.)"""

from __future__ import annotations

import json
import os
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

from tests.estate import PASSWORD, environ, live_trunks, write
from tests.sandboxes import Api, Sandbox
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
        git(seed, "add", "-A")
        git(seed, "commit", "--quiet", "-m", "a trunk")
        git(seed, "push", "--quiet", "origin", "HEAD:main")
        self.commit = git(seed, "rev-parse", "HEAD")

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
    shutil.copytree(github.checkout("plan-src"), workspace / "proposed")
    env = github.env(RECONCILER_COMMIT=github.commit)  # the job's env names the head commit
    del env["SIP_PASSWORD"]  # plans are given the API key and token only
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
    shutil.rmtree(github.tmp / "plan-src")
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


# -- Called from a team's config repository ---------------------------------------------

EXAMPLE = Path(__file__).parents[1] / "examples" / "config-repo"
INSTALL_STEPS = {
    "plan.yml": [("merge-group", "Install"), ("plan", "Install main's reconciler")],
    "apply.yml": [("reviewed", "Install"), ("apply", "Install"), ("save", "Install")],
    "drift.yml": [("drift", "Install"), ("health", "Install"), ("save", "Install")],
}


def _permissions(document: dict[str, Any]) -> dict[str, str]:
    """The union of what a workflow's jobs ask for (write wins over read)."""
    union: dict[str, str] = {}
    for job in document["jobs"].values():
        for scope, level in (job.get("permissions") or {}).items():
            if union.get(scope) != "write":
                union[scope] = level
    return union


def test_a_config_repository_calls_the_workflows_at_one_pinned_commit() -> None:
    for name in INSTALL_STEPS:
        called = yaml.safe_load((WORKFLOWS / name).read_text())
        call = called[True]["workflow_call"]  # YAML reads the key "on" as True
        assert call["inputs"]["reconciler"]["required"] is True
        caller = yaml.safe_load((EXAMPLE / ".github" / "workflows" / name).read_text())
        [job] = caller["jobs"].values()
        repository, _, commit = job["uses"].partition("@")
        assert repository == f"acme/exotel-reconciler/.github/workflows/{name}"
        assert len(commit) == 40
        assert job["with"]["reconciler"] == f"acme/exotel-reconciler@{commit}"
        assert "secrets" not in job  # environments hold them; never secrets: inherit
        assert caller["permissions"] == {}
        needed = _permissions(called)
        granted = job["permissions"]
        for scope, level in needed.items():
            assert scope in granted, (name, scope)
            assert level == "read" or granted[scope] == "write", (name, scope)
        # The called workflow holds the group: the same group here would deadlock.
        assert "concurrency" not in caller
        assert "concurrency" in called
        assert set(caller[True]) <= set(called[True])


def test_installs_the_pinned_reconciler_when_called(tmp_path: Path) -> None:
    """Every install step: this repository's own code, or the pinned commit when called;
    either way with the dependencies at their tested versions (constraints.txt)."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python").write_text('#!/bin/sh\necho "$@" >> "$INSTALLED"\n')
    (shim / "curl").write_text('#!/bin/sh\necho "curl $*" >> "$INSTALLED"\n')
    for tool in ("python", "curl"):
        (shim / tool).chmod(0o755)
    path = f"{shim}:{os.environ['PATH']}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    for workflow, steps in INSTALL_STEPS.items():
        for job, name in steps:
            log = tmp_path / f"{workflow}-{job}.log"
            env = {"PATH": path, "INSTALLED": str(log), "GITHUB_SERVER_URL": "https://github.com"}
            pinned = {**env, "RECONCILER": f"acme/rec@{commit}"}
            called = run_step(workflow, job, name, cwd=tmp_path, env=pinned)
            assert called.returncode == 0, called.stderr
            assert log.read_text().splitlines() == [
                "curl -fsSL -o reconciler-constraints.txt "
                f"https://raw.githubusercontent.com/acme/rec/{commit}/constraints.txt",
                "-m pip install -c reconciler-constraints.txt "
                f"git+https://github.com/acme/rec@{commit}",
            ]
            log.unlink()
            own = run_step(workflow, job, name, cwd=tmp_path, env={**env, "RECONCILER": ""})
            assert own.returncode == 0, own.stderr
            assert log.read_text() in (
                "-m pip install -c constraints.txt .\n",
                "-m pip install -c trusted/constraints.txt ./trusted\n",
            )
            for wrong in ("acme/rec@v0.2.0", "acme/rec@main", f"acme/rec@{commit}; rm -rf /"):
                bad = run_step(workflow, job, name, cwd=tmp_path, env={**env, "RECONCILER": wrong})
                assert bad.returncode == 1
                assert "must be OWNER/REPO@COMMIT" in bad.stdout


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
    """A called apply gets SIP_PASSWORDS (NAME=value lines) as RECONCILER_SECRETS, beside a
    SIP_PASSWORD_... variable the workflow names but the caller does not have (empty)."""
    workspace = github.checkout("called")
    env = github.env(ACCOUNT="demo", SIP_PASSWORD="")
    env["RECONCILER_SECRETS"] = f"# one line a password\n\nSIP_PASSWORD={PASSWORD}\n"
    result = run_step(
        "apply.yml", "apply", "Apply the current plan (manual run)", cwd=workspace, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(t["credentials"] for t in live_trunks(github.sandbox))
    env["RECONCILER_SECRETS"] = f"SIP_PASSWORD={PASSWORD}\n{PASSWORD}\n"
    broken = run_step(
        "apply.yml", "apply", "Apply the current plan (manual run)", cwd=workspace, env=env
    )
    assert broken.returncode == 1
    assert "RECONCILER_SECRETS: line 2 is not NAME=value" in broken.stderr
    assert PASSWORD not in broken.stdout + broken.stderr
