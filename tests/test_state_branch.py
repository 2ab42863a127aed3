"""The ledger on its own branch, against a local bare git remote standing in for GitHub."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from tests.estate import account_yaml

BRANCH = "reconciler-state"


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=GIT_ENV
    )
    return result.stdout


GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def reconciler(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **env},
    )


def origin(tmp_path: Path) -> Path:
    """A bare remote with a main branch holding two accounts' manifests."""
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(remote))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(remote), str(seed))
    manifests = seed / "manifests"
    manifests.mkdir()
    accounts = account_yaml() + account_yaml(sid="other").replace("accounts:\n  demo:", "  other:")
    (manifests / "accounts.yaml").write_text(accounts)
    (seed / ".gitignore").write_text("*.json.lock\n*.journal.jsonl\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "manifests")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    return remote


def clone(remote: Path, where: Path) -> Path:
    git(where.parent, "clone", "--quiet", str(remote), str(where))
    return where


def write_ledger(checkout: Path, account: str, sid: str, trunk_sid: str) -> Path:
    path = checkout / "manifests" / "state" / f"{account}.json"
    ledgers.write(path, Ledger(account, sid, {"bot": TrunkEntry(trunk_sid)}))
    return path


def on_branch(remote: Path, path: str) -> str:
    return git(remote, "show", f"{BRANCH}:{path}")


def test_push_then_pull_in_another_checkout(tmp_path: Path) -> None:
    remote = origin(tmp_path)
    first = clone(remote, tmp_path / "first")
    write_ledger(first, "demo", "demo", "trmum1aaaa")
    # A lock and a journal beside the ledger never go onto the branch.
    (first / "manifests" / "state" / "demo.json.lock").write_text("{}")
    (first / "manifests" / "state" / "demo.journal.jsonl").write_text("{}\n")
    head = git(first, "rev-parse", "HEAD").strip()
    pushed = reconciler(first, "state", "push", "--account", "demo", "--applied", head)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed to {BRANCH}" in pushed.stdout
    tree = git(remote, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert tree == ["manifests/state/demo.json", "manifests/state/demo.json.applied"]
    assert git(remote, "log", "--format=%s", "main").split("\n")[0] == "manifests"  # untouched

    second = clone(remote, tmp_path / "second")
    pulled = reconciler(second, "state", "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert "ledger of demo (manifests/state/demo.json): taken from" in pulled.stdout
    assert "ledger of other (manifests/state/other.json): not on" in pulled.stdout
    got = ledgers.read(second / "manifests/state/demo.json", account="demo", account_sid="demo")
    assert got.trunks["bot"].sid == "trmum1aaaa"
    assert (second / "manifests/state/demo.json.applied").read_text() == head + "\n"
    # Pushing what is already there makes no commit.
    again = reconciler(first, "state", "push", "--account", "demo", "--applied", head)
    assert "unchanged" in again.stdout
    assert len(git(remote, "log", "--format=%H", BRANCH).split()) == 1
    # --applied HEAD records the commit, never the word.
    named = reconciler(first, "state", "push", "--account", "demo", "--applied", "HEAD")
    assert named.returncode == 0, named.stderr
    assert on_branch(remote, "manifests/state/demo.json.applied") == head + "\n"
    # --applied names a commit of the repository, nothing else.
    wrong = reconciler(first, "state", "push", "--account", "demo", "--applied", "deadbeef")
    assert wrong.returncode == 1
    assert "--applied deadbeef: no such commit" in wrong.stderr
    # A ledger not pushed yet (an apply just made) is never overwritten by a pull.
    write_ledger(second, "demo", "demo", "trmum1newer")
    refused = reconciler(second, "state", "pull")
    assert refused.returncode == 1
    assert "differs from reconciler-state's: push it first" in refused.stderr
    assert "trmum1newer" in (second / "manifests/state/demo.json").read_text()
    forced = reconciler(second, "state", "pull", "--force")
    assert forced.returncode == 0
    assert "trmum1aaaa" in (second / "manifests/state/demo.json").read_text()


def test_concurrent_pushes_from_one_base_all_land(tmp_path: Path) -> None:
    """Two applies queued from the same base: neither loses the other's ledger."""
    remote = origin(tmp_path)
    runs = [clone(remote, tmp_path / f"run{n}") for n in range(2)]
    for round_ in range(4):
        write_ledger(runs[0], "demo", "demo", f"trmum1demo{round_}")
        write_ledger(runs[1], "other", "other", f"trmum1other{round_}")
        results: list[subprocess.CompletedProcess[str]] = []

        def push(
            checkout: Path, account: str, message: str, results: list[object] = results
        ) -> None:
            results.append(
                reconciler(checkout, "state", "push", "--account", account, "--message", message)
            )

        threads = [
            threading.Thread(target=push, args=(runs[0], "demo", f"demo {round_}")),
            threading.Thread(target=push, args=(runs[1], "other", f"other {round_}")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
        messages = git(remote, "log", "--format=%s", BRANCH).splitlines()
        assert {f"demo {round_}", f"other {round_}"} <= set(messages)
        assert f"trmum1demo{round_}" in on_branch(remote, "manifests/state/demo.json")
        assert f"trmum1other{round_}" in on_branch(remote, "manifests/state/other.json")


def test_a_broken_ledger_on_the_branch_replaces_nothing(tmp_path: Path) -> None:
    remote = origin(tmp_path)
    first = clone(remote, tmp_path / "first")
    git(first, "checkout", "--quiet", "--orphan", BRANCH)
    git(first, "rm", "--quiet", "-r", "--cached", ".")
    broken = first / "manifests" / "state" / "demo.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("<<<<<<< HEAD\n")
    git(first, "add", "manifests/state/demo.json")
    git(first, "commit", "--quiet", "-m", "broken")
    git(first, "push", "--quiet", "origin", BRANCH)
    second = clone(remote, tmp_path / "second")
    kept = write_ledger(second, "demo", "demo", "trmum1kept")
    pulled = reconciler(second, "state", "pull", "--force")
    assert pulled.returncode == 1
    assert f"{BRANCH}:manifests/state/demo.json" in pulled.stderr
    assert "not valid JSON" in pulled.stderr
    assert "trmum1kept" in kept.read_text()


def test_a_push_that_cannot_land_says_how_to_recover(tmp_path: Path) -> None:
    remote = origin(tmp_path)
    first = clone(remote, tmp_path / "first")
    write_ledger(first, "demo", "demo", "trmum1aaaa")
    git(first, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    failed = reconciler(first, "state", "push", "--account", "demo")
    assert failed.returncode == 1
    assert "The ledger is safe in the working tree" in failed.stderr
    assert "push it with: reconciler state push --account demo" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert ".." not in failed.stderr
    # The command it gives pushes where this one was asked to.
    elsewhere = ("--branch", "ledgers", "--remote", str(tmp_path / "gone.git"))
    failed = reconciler(first, "state", "push", "--account", "demo", *elsewhere)
    assert f"--branch ledgers --remote {tmp_path / 'gone.git'}" in failed.stderr
    # A branch name git would refuse is refused before anything is tried.
    bad = reconciler(first, "state", "push", "--account", "demo", "--branch", "bad..name")
    assert bad.returncode == 1
    assert "--branch 'bad..name' is not a valid branch name" in bad.stderr


def test_drift_records_are_pushed_without_the_ledger(tmp_path: Path) -> None:
    """A drift run keeps when it checked each trunk, and never puts back a ledger."""
    remote = origin(tmp_path)
    first = clone(remote, tmp_path / "first")
    write_ledger(first, "demo", "demo", "trmum1applied")
    assert reconciler(first, "state", "push", "--account", "demo").returncode == 0
    drift = clone(remote, tmp_path / "drift")
    write_ledger(drift, "demo", "demo", "trmum1stale")  # an older copy must not go back
    record = drift / "manifests" / "state" / "demo.json.checked.json"
    record.write_text('{"bot": "2026-12-02T06:00:00+00:00"}\n')
    pushed = reconciler(drift, "state", "push", "--account", "demo", "--checked")
    assert pushed.returncode == 0, pushed.stderr
    assert "trmum1applied" in on_branch(remote, "manifests/state/demo.json")
    assert "2026-12-02T06:00:00" in on_branch(remote, "manifests/state/demo.json.checked.json")
    third = clone(remote, tmp_path / "third")
    assert reconciler(third, "state", "pull").returncode == 0
    assert (third / "manifests/state/demo.json.checked.json").exists()
