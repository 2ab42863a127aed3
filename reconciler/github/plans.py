"""Which reviewed plans does an apply run carry, and are they genuine?

Called by ``reconciler ci find-plans`` in the apply workflow's first job, after a pull
request is merged. GitHub keeps at most one pending run per concurrency group (or a
queue, where ``queue: max`` is honoured), so a run may carry several merges: every pull
request merged on the base branch's first-parent history since the oldest commit the
accounts last applied (the ``.applied`` markers beside the ledgers).

For each of them the plan is the artifact ``plan-pr<N>-<head sha>``, and it counts only
when all of this holds (docs/gitops.md, "What is applied is what was reviewed"):

* the pull request is merged, into the base branch, from this repository (a fork's is
  never planned with credentials);
* the artifact is unexpired and was made by a successful run of the plan workflow on
  ``pull_request_target`` (any workflow can upload an artifact of that name);
* the plan's own signed record of where it was made (``source``, written by ``plan
  --out`` from the runner's variables) names this repository, that run, that pull
  request and its merged head, a base of the base branch, and a workflow commit on the
  base branch's history. Its signature is checked by ``apply --plan`` with the plan key,
  which only the plan and apply environments hold; this module checks what it says.

Nothing here decides what to apply: apply re-plans and compares (``plan.reviewed``).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler.errors import GitHubError
from reconciler.github.rest import Client
from reconciler.pipeline.state_branch import APPLIED, Git

PLAN_FILES = ("plan.json", "plan.md")


class Status(StrEnum):
    REVIEWED = "reviewed"
    NO_MANIFESTS = "no-manifests"
    FORK = "fork"
    MISSING = "missing"  # no genuine plan of its merged head
    NOT_MERGED = "not-merged"


@dataclass(frozen=True)
class Found:
    number: int
    status: Status
    detail: str = ""

    def document(self) -> dict[str, Any]:
        return {"number": self.number, "status": str(self.status), "detail": self.detail}


@dataclass(frozen=True)
class Search:
    """Where to look, and what counts."""

    commit: str  # the merged commit this run applies
    event_pr: int | None  # the pull request whose merge started the run
    manifests: PurePosixPath  # the manifests folder, relative to the repository's root
    base: str = "main"
    plan_workflow: str = ".github/workflows/plan.yml"
    wait_seconds: float = 600.0  # the merged pull request's plan may still be running
    poll_seconds: float = 20.0


def since(git: Git, markers: Iterable[str], commit: str) -> str | None:
    """The oldest of the accounts' last-applied commits that is on ``commit``'s history:
    every merge after it is carried by this run."""
    known = []
    for marker in markers:
        sha = marker.strip()
        if len(sha) == 40 and _ancestor(git, sha, commit):
            known.append(sha)
    oldest: str | None = None
    for sha in known:
        if oldest is None or _ancestor(git, sha, oldest):
            oldest = sha
    return oldest


def markers(root: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(root.rglob(f"*.json{APPLIED}"))]


def _ancestor(git: Git, older: str, newer: str) -> bool:
    return git("merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def merged_since(client: Client, git: Git, search: Search, start: str | None) -> list[int]:
    numbers = {search.event_pr} if search.event_pr else set()
    if start:
        listed = git("rev-list", "--first-parent", f"{start}..{search.commit}").stdout.split()
        for sha in listed:
            for pr in client.get(client.repo(f"/commits/{sha}/pulls")):
                if pr.get("merged_at") and (pr.get("base") or {}).get("ref") == search.base:
                    numbers.add(int(pr["number"]))
    return sorted(numbers)


def provenance_problem(
    document: Mapping[str, Any],
    *,
    git: Git,
    search: Search,
    repository: str,
    pr: Mapping[str, Any],
    run_id: int,
) -> str | None:
    """What the plan's record of where it was made contradicts, or None."""
    source = document.get("source")
    if not isinstance(source, dict):
        return "the plan does not say where it was made (not made by the plan workflow)"
    pull = source.get("pull_request") or {}
    expected = {
        "repository": (source.get("repository"), repository),
        "event": (source.get("event"), "pull_request_target"),
        "run": (str(source.get("run_id")), str(run_id)),
        "pull request": (pull.get("number"), pr["number"]),
        "head": (pull.get("head_sha"), pr["head"]["sha"]),
        "base": (pull.get("base_ref"), search.base),
    }
    for what, (said, wanted) in expected.items():
        if said != wanted:
            return f"the plan was made for {what} {said!r}, not {wanted!r}"
    workflow_sha = str(source.get("workflow_sha") or "")
    if len(workflow_sha) != 40 or not _ancestor(git, workflow_sha, search.commit):
        return (
            f"the plan was made by workflow commit {workflow_sha[:12] or '(none)'}, which is "
            f"not on {search.base}'s history"
        )
    return None


def _genuine_run(client: Client, artifact: Mapping[str, Any], search: Search) -> int | None:
    run_ref = artifact.get("workflow_run") or {}
    if artifact.get("expired") or not run_ref.get("id"):
        return None
    if run_ref.get("head_repository_id") != run_ref.get("repository_id"):
        return None
    run = client.get(client.repo(f"/actions/runs/{run_ref['id']}"))
    genuine = (
        run.get("path") == search.plan_workflow
        and run.get("event") == "pull_request_target"
        and run.get("conclusion") == "success"
    )
    return int(run_ref["id"]) if genuine else None


def _unpack(blob: bytes, into: Path) -> dict[str, Any]:
    into.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            for name in PLAN_FILES:
                if name in archive.namelist():
                    (into / name).write_bytes(archive.read(name))
    except zipfile.BadZipFile as error:
        raise GitHubError(f"the plan artifact is not a zip file: {error}") from None
    try:
        document: dict[str, Any] = json.loads((into / "plan.json").read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise GitHubError(f"the plan artifact holds no readable plan.json: {error}") from None
    return document


def _plan_of(
    client: Client, git: Git, search: Search, pr: Mapping[str, Any], into: Path, *, wait: bool
) -> Found:
    number = int(pr["number"])
    name = f"plan-pr{number}-{pr['head']['sha']}"
    deadline = time.monotonic() + (search.wait_seconds if wait else 0.0)
    rejected = ""
    while True:
        listed = client.paginate(client.repo("/actions/artifacts"), key="artifacts", name=name)
        for artifact in sorted(listed, key=lambda a: str(a.get("created_at")), reverse=True):
            run_id = _genuine_run(client, artifact, search)
            if run_id is None:
                continue
            folder = into / f"pr{number}"
            document = _unpack(client.download(str(artifact["archive_download_url"])), folder)
            problem = provenance_problem(
                document,
                git=git,
                search=search,
                repository=f"{client.repository.owner}/{client.repository.name}",
                pr=pr,
                run_id=run_id,
            )
            if problem is None:
                return Found(number, Status.REVIEWED, f"run {run_id}")
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
            rejected = problem
        if time.monotonic() >= deadline:
            detail = rejected or f"no successful {search.plan_workflow} run kept {name}"
            return Found(number, Status.MISSING, detail)
        time.sleep(search.poll_seconds)


def find(
    client: Client,
    git: Git,
    search: Search,
    into: Path,
    *,
    on_progress: Callable[[str], None] = lambda line: None,
) -> list[Found]:
    """Each pull request this run carries, with what became of its plan; the genuine
    plans are unpacked into ``into/pr<N>/``."""
    start = since(git, markers(git.root / search.manifests), search.commit)
    numbers = merged_since(client, git, search, start)
    found = []
    for number in numbers:
        pr = client.get(client.repo(f"/pulls/{number}"))
        head_repo = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        here = f"{client.repository.owner}/{client.repository.name}"
        if not pr.get("merged") or (pr.get("base") or {}).get("ref") != search.base:
            found.append(Found(number, Status.NOT_MERGED, f"not merged into {search.base}"))
        elif not _touches(client, number, search.manifests):
            found.append(Found(number, Status.NO_MANIFESTS))
        elif head_repo != here:
            found.append(Found(number, Status.FORK, f"from {head_repo or 'a deleted fork'}"))
        else:
            found.append(_plan_of(client, git, search, pr, into, wait=number == search.event_pr))
        on_progress(f"pull request #{number}: {found[-1].status} {found[-1].detail}".rstrip())
    return found


def _touches(client: Client, number: int, manifests: PurePosixPath) -> bool:
    prefix = f"{manifests.as_posix().rstrip('/')}/"
    files = client.paginate(client.repo(f"/pulls/{number}/files"))
    # A file moved out of the folder changes it too: its old name is previous_filename.
    names = (str(f.get(key) or "") for f in files for key in ("filename", "previous_filename"))
    return any(name.startswith(prefix) for name in names)
