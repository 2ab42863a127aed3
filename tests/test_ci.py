"""``reconciler ci``: the workflows' GitHub steps, run as the CLI against a double of
GitHub's REST API (tests/github_double.py) and real git repositories on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.github import reports
from reconciler.plan import signing
from tests.github_double import OWNER, PERSON, REPO, GitHubDouble, serving
from tests.test_workflows import GIT_ENV, git, outputs

KEY = "0123456789abcdef" * 4


@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    with serving() as double:
        yield double


def ci(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "ci", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **env},
        timeout=120,
        check=False,
    )


# -- comments and issues --------------------------------------------------------------


def test_the_plan_comment_is_one_comment_updated_in_place(gh: GitHubDouble, tmp_path: Path) -> None:
    for n in range(3):  # more than a page of other comments before ours
        gh.comment(7, f"a person's comment {n}", PERSON)
    gh.comment(7, "<!-- reconciler-plan:demo --> quoted by a person", PERSON)
    body = tmp_path / "plan.md"
    body.write_text("<!-- reconciler-plan:demo -->\n### first\n")
    first = ci("comment", "--pr", "7", "--body", str(body), env=gh.env(), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    body.write_text("<!-- reconciler-plan:demo -->\n### second\n")
    second = ci("comment", "--pr", "7", "--body", str(body), env=gh.env(), cwd=tmp_path)
    assert "updated" in second.stdout, second.stderr
    bodies = gh.bodies(7)
    assert bodies.count("<!-- reconciler-plan:demo -->\n### second\n") == 1
    assert "<!-- reconciler-plan:demo --> quoted by a person" in bodies  # not ours: untouched
    assert not any("### first" in b for b in bodies)
    assert all(auth == f"Bearer {gh.env()['GH_TOKEN']}" for _, _, auth in gh.state.requests)


def test_a_failed_plan_marks_the_comment_stale_with_redacted_error(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    gh.comment(7, "<!-- reconciler-plan:demo -->\n### the old plan\n")
    error = tmp_path / "plan.err"
    leaked = "EXOTEL token was s3cr3t-Token-value, url https://u:pw-9@host/x, ghp_" + "a" * 36
    error.write_text(f"reconciler: {leaked}\n```\nnot a fence end\n")
    env = gh.env(EXOTEL_API_TOKEN="s3cr3t-Token-value")
    args = ("stale", "--pr", "7", "--head", "f" * 40, "--error", str(error))
    for _ in range(2):  # twice: the second replaces the first warning, keeps the old plan
        result = ci(*args, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    [body] = gh.bodies(7)
    assert body.startswith("<!-- reconciler-plan:stale -->")
    assert body.count("Stale:") == 1
    assert "### the old plan" in body
    for secret in ("s3cr3t-Token-value", "pw-9", "ghp_aaaa"):
        assert secret not in body
    assert "````\n" in body  # a longer fence than the backticks inside


def test_the_drift_issue_opens_updates_and_closes(gh: GitHubDouble, tmp_path: Path) -> None:
    body = tmp_path / "drift.md"
    common = ("--label", "drift", "--title", "Exotel drift", "--resolved", "Drift is gone.")
    body.write_text("<!-- reconciler-drift:demo -->\nfirst\n")
    assert (
        ci(
            "issue", *common, "--body", str(body), "--status", "2", env=gh.env(), cwd=tmp_path
        ).returncode
        == 0
    )
    body.write_text("<!-- reconciler-drift:demo -->\nsecond\n")
    ci("issue", *common, "--body", str(body), "--status", "2", env=gh.env(), cwd=tmp_path)
    [opened] = gh.state.issues.values()
    assert (opened["state"], opened["body"]) == ("open", "<!-- reconciler-drift:demo -->\nsecond\n")
    failed = ci("issue", *common, "--body", str(body), "--status", "1", env=gh.env(), cwd=tmp_path)
    assert "left as it is" in failed.stdout
    assert opened["state"] == "open"
    closed = ci("issue", *common, "--body", str(body), "--status", "0", env=gh.env(), cwd=tmp_path)
    assert closed.returncode == 0, closed.stderr
    assert opened["state"] == "closed"
    assert gh.bodies(opened["number"]) == ["Drift is gone."]


def test_busy_says_when_an_apply_runs(gh: GitHubDouble, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = gh.env(GITHUB_OUTPUT=str(out))
    assert ci("busy", "--workflow", "apply.yml", env=env, cwd=tmp_path).returncode == 0
    assert outputs(out) == {"busy": "false"}
    out.unlink()
    gh.state.busy["apply.yml"] = "waiting"
    ci("busy", "--workflow", "apply.yml", env=env, cwd=tmp_path)
    assert outputs(out) == {"busy": "true"}


def test_a_dispatched_apply_needs_an_approval(gh: GitHubDouble, tmp_path: Path) -> None:
    refused = ci("approved", "--run-id", "77", env=gh.env(), cwd=tmp_path)
    assert refused.returncode == 3
    assert "nobody approved" in refused.stderr
    environment = [{"id": 1, "name": "production"}]
    gh.state.approvals[77] = [
        {"state": "rejected", "environments": environment, "user": PERSON, "comment": ""},
        {
            "state": "approved",
            "environments": [{"id": 2, "name": "other"}],
            "user": PERSON,
            "comment": "",
        },
    ]
    assert ci("approved", "--run-id", "77", env=gh.env(), cwd=tmp_path).returncode == 3
    gh.state.approvals[77].append(
        {"state": "approved", "environments": environment, "user": PERSON, "comment": "ok"}
    )
    approved = ci("approved", "--run-id", "77", env=gh.env(), cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert "approved for production by asha" in approved.stdout


def test_no_token_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = ci(
        "busy", env={"GH_TOKEN": "", "GITHUB_TOKEN": "", "GITHUB_REPOSITORY": "a/b"}, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "no GitHub token" in result.stderr
    assert "Traceback" not in result.stderr


# -- the newest attempt of each account -------------------------------------------------


def test_the_newest_attempt_counts_whatever_the_names(tmp_path: Path) -> None:
    for name in (
        "apply-a-b-77-9",
        "apply-a-b-77-10",
        "apply-a-77-2",
        "apply-a-77-x",
        "apply-b-78-5",
    ):
        (tmp_path / name).mkdir()
    found = reports.newest_attempts(tmp_path, ["a", "a-b", "b"], "77")
    assert found == {"a-b": tmp_path / "apply-a-b-77-10", "a": tmp_path / "apply-a-77-2"}


# -- finding and proving the reviewed plans ---------------------------------------------


class Repo:
    """A repository with main's history: the plan workflow's commit, then merges."""

    def __init__(self, root: Path) -> None:
        self.root = root
        git(root.parent, "init", "--quiet", "-b", "main", str(root))
        (root / "manifests").mkdir()
        (root / "manifests" / "trunks.yaml").write_text("trunks: []\n")
        self.workflow = self.commit("the plan workflow")

    def commit(self, message: str) -> str:
        (self.root / "log").write_text(message)
        git(self.root, "add", "-A")
        git(self.root, "commit", "--quiet", "-m", message)
        return git(self.root, "rev-parse", "HEAD")


def signed_plan(
    *, pr: int, head: str, run_id: int, workflow: str, base: str = "main", repository: str = ""
) -> bytes:
    actions: list[dict[str, Any]] = [
        {"address": "demo/bot", "kind": "create", "operation": "create_trunk"}
    ]
    document = {
        "format_version": 1,
        "checksum": signing.checksum([signing.saved_canonical(a) for a in actions]),
        "actions": actions,
        "source": {
            "repository": repository or f"{OWNER}/{REPO}",
            "event": "pull_request_target",
            "workflow_sha": workflow,
            "run_id": str(run_id),
            "pull_request": {"number": pr, "head_sha": head, "base_ref": base},
        },
    }
    return json.dumps(signing.sign(document, KEY)).encode()


def test_find_plans_takes_only_genuine_plans_of_the_merged_head(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    merged = repo.commit("merge #7")
    head = "7" * 40
    gh.pull(7, head=head)
    name = f"plan-pr7-{head}"
    plan = {
        "plan.md": b"### plan",
        "plan.json": signed_plan(pr=7, head=head, run_id=100, workflow=repo.workflow),
    }
    # Forgeries first, each stopped by a different check.
    gh.plan_run(90, path=".github/workflows/evil.yml")  # another workflow uploaded it
    gh.artifact(name, plan, run_id=90)
    gh.plan_run(91)
    retargeted = signed_plan(pr=7, head=head, run_id=91, workflow=repo.workflow, base="x")
    gh.artifact(name, {"plan.json": retargeted}, run_id=91)  # planned against branch x
    gh.plan_run(92)
    elsewhere = signed_plan(pr=7, head=head, run_id=92, workflow="e" * 40)
    gh.artifact(name, {"plan.json": elsewhere}, run_id=92)  # workflow commit not on main
    gh.plan_run(93, conclusion="failure")
    gh.artifact(name, plan, run_id=93)
    gh.plan_run(94)
    gh.artifact(name, plan, run_id=94, expired=True)
    gh.artifact(name, plan, run_id=94, head_repository_id=9)  # a fork's run
    out = tmp_path / "out"
    args = (
        "find-plans",
        "--commit",
        merged,
        "--pr",
        "7",
        "--into",
        str(tmp_path / "reviewed"),
        "--wait",
        "0",
    )
    found = ci(*args, env=gh.env(GITHUB_OUTPUT=str(out)), cwd=repo.root)
    assert found.returncode == 0, found.stderr
    [pr] = json.loads(outputs(out)["prs"])
    assert pr["status"] == "missing"
    assert "not on main's history" in pr["detail"] or "not 'main'" in pr["detail"]
    assert not (tmp_path / "reviewed" / "pr7").exists()

    gh.plan_run(100)
    gh.artifact(name, plan, run_id=100)
    out.unlink()
    found = ci(*args, env=gh.env(GITHUB_OUTPUT=str(out)), cwd=repo.root)
    assert found.returncode == 0, found.stderr
    assert json.loads(outputs(out)["prs"]) == [
        {"number": 7, "status": "reviewed", "detail": "run 100"}
    ]
    kept = json.loads((tmp_path / "reviewed" / "pr7" / "plan.json").read_text())
    assert signing.verify(kept, name="plan.json", key=KEY).accepted
    token = gh.env()["GH_TOKEN"]
    for _, url, auth in gh.state.requests:  # the token went to the API and nowhere else
        assert (auth == f"Bearer {token}") == url.startswith(gh.url), url


def test_find_plans_carries_every_merge_since_the_last_apply(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    (repo.root / "manifests" / "state").mkdir()
    (repo.root / "manifests" / "state" / "demo.json.applied").write_text(repo.workflow + "\n")
    merges = {number: repo.commit(f"merge #{number}") for number in (4, 5, 6, 8)}
    gh.pull(4, head="4" * 40)
    gh.pull(5, head="5" * 40, files=("README.md",))
    gh.pull(6, head="6" * 40, fork="mallory/config")
    gh.pull(8, head="8" * 40, files=("docs/x.md",))
    gh.state.files[8].append(
        {"filename": "elsewhere.yaml", "previous_filename": "manifests/a.yaml"}
    )
    for number, sha in merges.items():
        gh.merged_commit(sha, number)
    for number in (4, 8):
        gh.plan_run(number)
        head = str(number) * 40
        document = signed_plan(pr=number, head=head, run_id=number, workflow=repo.workflow)
        gh.artifact(f"plan-pr{number}-{head}", {"plan.json": document}, run_id=number)
    out = tmp_path / "out"
    args = (
        "find-plans",
        "--commit",
        merges[8],
        "--pr",
        "8",
        "--into",
        str(tmp_path / "r"),
        "--wait",
        "0",
    )
    found = ci(*args, env=gh.env(GITHUB_OUTPUT=str(out)), cwd=repo.root)
    assert found.returncode == 0, found.stderr
    statuses = {p["number"]: p["status"] for p in json.loads(outputs(out)["prs"])}
    assert statuses == {4: "reviewed", 5: "no-manifests", 6: "fork", 8: "reviewed"}
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["README", "pr4", "pr8"]


# -- the merge a plan describes ------------------------------------------------------------


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote whose main moved on after a pull request branched off it, with the
    pull request's head under refs/pull/1/head as GitHub keeps it."""
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(remote))
    git(remote, "config", "uploadpack.allowFilter", "true")
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "manifests").mkdir()
    (work / "manifests" / "a.yaml").write_text("a: 1\n")
    (work / "manifests" / "b.yaml").write_text("b: 1\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "base")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    git(work, "checkout", "--quiet", "-b", "topic")
    (work / "manifests" / "a.yaml").write_text("a: 2\n")
    git(work, "commit", "--quiet", "-am", "the pull request")
    git(work, "push", "--quiet", "origin", "HEAD:refs/pull/1/head")
    git(work, "checkout", "--quiet", "main")
    (work / "manifests" / "b.yaml").write_text("b: 2\n")  # merged by someone else since
    git(work, "commit", "--quiet", "-am", "another pull request")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return remote, work


def merge_args(*, pr: int, head: str, into: Path, remote: Path) -> tuple[str, ...]:
    return (
        "merge",
        "--pr",
        str(pr),
        "--head",
        head,
        "--into",
        str(into),
        "--url",
        f"file://{remote}",
    )


def test_the_merge_is_built_on_mains_tip_not_an_old_test_merge(
    origin: tuple[Path, Path], tmp_path: Path
) -> None:
    remote, work = origin
    head = git(work, "rev-parse", "topic")
    out = tmp_path / "out"
    args = merge_args(pr=1, head=head, into=tmp_path / "proposed", remote=remote)
    merged = ci(*args, env={"GITHUB_OUTPUT": str(out)}, cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    proposed = tmp_path / "proposed" / "manifests"
    assert (proposed / "a.yaml").read_text() == "a: 2\n"  # the pull request's change
    assert (proposed / "b.yaml").read_text() == "b: 2\n"  # and what main has now
    said = outputs(out)
    assert said["changed"] == "true"
    assert said["base_sha"] == git(work, "rev-parse", "main")

    old = merge_args(pr=1, head="0" * 40, into=tmp_path / "proposed", remote=remote)
    stale = ci(*old, env={}, cwd=tmp_path)
    assert stale.returncode == 1
    assert "a newer push has its own run" in stale.stderr


def test_the_merge_trusts_mains_signers_never_the_pull_requests(
    origin: tuple[Path, Path], tmp_path: Path
) -> None:
    """The merged manifests are a git repository of their own (state pull fetches the
    ledgers into it), beside main's list of who may sign the state branch: a pull request
    that lists its own key there does not change whom its plan trusts."""
    remote, work = origin
    signers = work / ".github" / "reconciler-state.signers"
    signers.parent.mkdir()
    signers.write_text("reconciler-state ssh-ed25519 AAAAmain\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "signers")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    git(work, "checkout", "--quiet", "-b", "sneaky")
    signers.write_text("reconciler-state ssh-ed25519 AAAAmine\n")
    (work / "manifests" / "a.yaml").write_text("a: 9\n")
    git(work, "commit", "--quiet", "-am", "trust me")
    git(work, "push", "--quiet", "origin", "HEAD:refs/pull/2/head")
    head = git(work, "rev-parse", "HEAD")
    into = tmp_path / "proposed"
    merged = ci(*merge_args(pr=2, head=head, into=into, remote=remote), env={}, cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert (into / "manifests" / "a.yaml").read_text() == "a: 9\n"
    assert (into / ".github" / "reconciler-state.signers").read_text().endswith("AAAAmain\n")
    assert git(into / "manifests", "rev-parse", "--show-toplevel") == str(into.resolve())


def test_a_conflict_with_main_fails_the_plan_naming_the_file(
    origin: tuple[Path, Path], tmp_path: Path
) -> None:
    remote, work = origin
    (work / "manifests" / "a.yaml").write_text("a: 3\n")
    git(work, "commit", "--quiet", "-am", "a conflicting change")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    head = git(work, "rev-parse", "topic")
    args = merge_args(pr=1, head=head, into=tmp_path / "p", remote=remote)
    result = ci(*args, env={}, cwd=tmp_path)
    assert result.returncode == 1
    assert "conflicts with main" in result.stderr
    assert "manifests/a.yaml" in result.stderr


def test_a_pull_request_that_touches_no_manifest_changes_nothing(
    origin: tuple[Path, Path], tmp_path: Path
) -> None:
    remote, work = origin
    git(work, "checkout", "--quiet", "-b", "docs", "main")
    (work / "README.md").write_text("docs\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "docs only")
    git(work, "push", "--quiet", "origin", "HEAD:refs/pull/2/head")
    head = git(work, "rev-parse", "HEAD")
    out = tmp_path / "out"
    args = merge_args(pr=2, head=head, into=tmp_path / "p", remote=remote)
    result = ci(*args, env={"GITHUB_OUTPUT": str(out)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs(out)["changed"] == "false"
    assert (tmp_path / "p" / "manifests" / "b.yaml").exists()


def test_the_drift_issue_from_many_shards(gh: GitHubDouble, tmp_path: Path) -> None:
    """Each shard's report and exit code, merged: any drift opens the issue and says which
    shards could not look; a failed or missing shard keeps it from closing; only every
    shard clean closes it."""
    reports = tmp_path / "drifted"
    reports.mkdir()

    def shard(index: int, status: int | None, body: str = "") -> None:
        (reports / f"drift-{index}.status").unlink(missing_ok=True)
        if status is not None:
            (reports / f"drift-{index}.status").write_text(f"{status}\n")
        marker = f"<!-- reconciler-drift:acct{index} -->\n### Exotel drift: acct{index}\n\n"
        (reports / f"drift-{index}.md").write_text(marker + body)

    def issue(*shards: int) -> subprocess.CompletedProcess[str]:
        return ci(
            "issue", "--label", "drift", "--title", "Exotel drift", "--resolved", "Gone.",
            "--reports", str(reports), "--expect", json.dumps(list(shards)), "--shard-count", "8",
            env=gh.env(), cwd=tmp_path,
        )  # fmt: skip

    shard(2, 2, "**Drift: 1 change(s)**\n| `acct2/bot` | IP | delete |\n")
    shard(5, None)  # its job failed before it wrote its exit code
    shard(7, 0, "**No drift: live state matches the last apply.**\n")
    opened = issue(2, 5, 7)
    assert opened.returncode == 0, opened.stderr
    assert "::warning::shard 5" in opened.stdout
    [found] = gh.state.issues.values()
    body = found["body"]
    assert body.startswith("<!-- reconciler-drift:shards -->\n### Exotel drift: 3 of 8 shards\n")
    assert "**Drift in shard 2/8; shard 5/8 could not look (not checked this run); " in body
    assert "none in shard 7/8.**" in body
    assert body.index("#### Shard 2/8") < body.index("`acct2/bot`") < body.index("#### Shard 7/8")
    assert "<!-- reconciler-drift:acct2 -->" not in body  # one marker: the issue's own

    shard(2, 0, "**No drift: live state matches the last apply.**\n")
    left = issue(2, 5, 7)
    assert "left as it is" in left.stdout
    assert found["state"] == "open"
    missing = issue(2, 7, 9)  # shard 9 kept nothing at all
    assert "left as it is" in missing.stdout
    assert found["state"] == "open"
    closed = issue(2, 7)
    assert closed.returncode == 0, closed.stderr
    assert found["state"] == "closed"


def test_one_shard_is_its_own_report(tmp_path: Path) -> None:
    from reconciler.github import shards  # noqa: PLC0415

    (tmp_path / "drift-1.md").write_text("<!-- reconciler-drift:demo -->\nsame\n")
    (tmp_path / "drift-1.status").write_text("2\n")
    merged = shards.merge(shards.read(tmp_path, [1]), 1)
    assert (merged.status, merged.body) == (2, "<!-- reconciler-drift:demo -->\nsame\n")


def test_gather_takes_each_shards_newest_attempt(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    for name, text in (("drift-shard1-7-1", "old"), ("drift-shard1-7-10", "new"),
                       ("drift-shard12-7-2", "twelve"), ("drift-shard3-8-1", "another run"),
                       ("apply-demo-7-1", "not drift")):  # fmt: skip
        (kept / name).mkdir(parents=True)
        (kept / name / f"{name.split('-')[1]}.txt").write_text(text)
    ran = ci("gather", "--from", str(kept), "--run-id", "7", "--into", "out", env={}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shard1.txt", "shard12.txt"]
    assert (tmp_path / "out" / "shard1.txt").read_text() == "new"  # attempt 10, not 1
    nothing = ci("gather", "--from", "absent", "--run-id", "7", "--into", "o", env={}, cwd=tmp_path)
    assert nothing.returncode == 0
    assert "nothing gathered" in nothing.stdout


def test_an_issue_needs_a_body_or_the_shards_reports(gh: GitHubDouble, tmp_path: Path) -> None:
    common = ("issue", "--label", "drift", "--title", "t", "--resolved", "r")
    neither = ci(*common, env=gh.env(), cwd=tmp_path)
    assert neither.returncode == 1
    assert "give --body FILE and --status CODE" in neither.stderr
    both = ci(*common, "--body", "b", "--status", "0", "--reports", "d", env=gh.env(), cwd=tmp_path)
    assert both.returncode == 1
    assert "not both" in both.stderr
    words = ci(*common, "--reports", "d", "--expect", '["a"]', env=gh.env(), cwd=tmp_path)
    assert words.returncode == 1
    assert "--expect must list shard numbers, like [1, 3]" in words.stderr
