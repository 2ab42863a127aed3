"""The manifests a pull request would make, merged here from main's tip and its head.

Called by ``reconciler ci merge`` in the plan workflow. GitHub's own test merge
(``refs/pull/N/merge``) is not enough: since February 2026 it is regenerated only on a
push to the pull request, a change of merge base, or after 12 hours (GitHub changelog,
2026-02-19, "Changes to test merge commit generation for pull requests"), so it can hold
an old main, and a plan of it would undo what other pull requests merged since. So the
merge is built here, from the base branch as it is now and the head the event names:

* a blob-less clone of the base branch (commits and trees only; blobs arrive when read),
  then ``refs/pull/N/head``, which GitHub keeps for every pull request, forks included;
* the head fetched must be the event's head SHA: a newer push has its own run;
* ``git merge-tree --write-tree`` (git 2.38+) merges without a working tree and fails on
  a conflict, naming the files;
* only the manifests folder of the merged tree is written out, as data, into a new git
  repository (``state pull`` fetches the ledgers into it), with the base's list of who
  may sign the state branch (``.github/reconciler-state.signers``): the base's, never
  the pull request's, so a pull request cannot choose whom its own plan trusts.

The token reaches git through the environment for these commands only (an
``http.extraheader`` in ``GIT_CONFIG_*`` variables), never in ``.git/config``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconciler.errors import GitHubError
from reconciler.pipeline.state_branch import token_config
from reconciler.pipeline.state_signing import SIGNERS


@dataclass(frozen=True)
class Merged:
    base_sha: str
    head_sha: str
    tree: str
    changed: bool  # does the merge change the manifests folder at all?


def _git(
    args: list[str], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[bytes]:
    command = ["git", *args]
    return subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, check=False)  # noqa: S603


def _text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8", "replace").strip()


def _must(result: subprocess.CompletedProcess[bytes], what: str) -> str:
    if result.returncode != 0:
        error = result.stderr.decode("utf-8", "replace").strip()
        raise GitHubError(f"{what} failed: {error}")
    return _text(result)


def build(
    *,
    url: str,
    server: str,
    token: str,
    base: str,
    pr: int,
    head_sha: str,
    manifests: PurePosixPath,
    into: Path,
    environ: Mapping[str, str],
) -> Merged:
    auth = token_config({**environ, "GH_TOKEN": token, "GITHUB_SERVER_URL": server})
    env = {**environ, **auth, "GIT_TERMINAL_PROMPT": "0"}
    with tempfile.TemporaryDirectory(prefix="reconciler-merge-") as scratch:
        repo = Path(scratch) / "repo.git"
        clone = ["clone", "--quiet", "--bare", "--filter=blob:none", "--single-branch"]
        _must(
            _git([*clone, "--branch", base, url, str(repo)], cwd=Path(scratch), env=env),
            f"cloning {base}",
        )
        fetched = _git(
            ["fetch", "--quiet", "--no-tags", "origin", f"+refs/pull/{pr}/head:refs/pr/head"],
            cwd=repo,
            env=env,
        )
        _must(fetched, f"fetching pull request #{pr}'s head")
        head = _must(_git(["rev-parse", "refs/pr/head"], cwd=repo, env=env), "reading the head")
        if head != head_sha:
            raise GitHubError(
                f"pull request #{pr}'s head is now {head[:12]}, not {head_sha[:12]} as this "
                "run was told: a newer push has its own run, which plans it"
            )
        base_sha = _must(_git(["rev-parse", f"refs/heads/{base}"], cwd=repo, env=env), "base")
        merged = _git(
            ["merge-tree", "--write-tree", "--name-only", "--no-messages", base_sha, head],
            cwd=repo,
            env=env,
        )
        lines = _text(merged).splitlines()
        if merged.returncode == 1:
            conflicted = ", ".join(sorted(set(lines[1:]))) or "(see git)"
            raise GitHubError(
                f"pull request #{pr} conflicts with {base} ({base_sha[:12]}) in: {conflicted}. "
                f"Merge {base} into it or rebase, then push"
            )
        _must(merged, "merging")
        tree = lines[0]
        folder = manifests.as_posix().strip("/")
        diff = _git(
            ["diff-tree", "--quiet", "-r", f"{base_sha}^{{tree}}", tree, "--", folder],
            cwd=repo,
            env=env,
        )
        if diff.returncode not in (0, 1):
            _must(diff, "comparing the manifests")
        into.mkdir(parents=True, exist_ok=True)
        _must(_git(["init", "--quiet", str(into.resolve())], cwd=into, env=env), "git init")
        for source, path in ((tree, folder), (base_sha, SIGNERS.as_posix())):
            archive = _git(["archive", "--format=tar", source, "--", path], cwd=repo, env=env)
            if archive.returncode == 0:
                with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                    tar.extractall(into, filter="data")
            elif b"did not match any files" not in archive.stderr:  # absent: nothing to write
                _must(archive, f"writing out {path}")
    return Merged(base_sha=base_sha, head_sha=head, tree=tree, changed=diff.returncode == 1)
