"""A stand-in for GitHub's REST API, for the ``reconciler ci`` commands' tests.

Only the endpoints the workflows use, each answering with the shapes GitHub documents
(docs.github.com/en/rest: "Issue comments", "Issues", "Pulls", "Commits", "Workflow
runs", "Artifacts"), with ``link``-header pagination ("Using pagination in the REST
API") and an artifact download that answers 302 to storage on another origin, as
GitHub's does ("Download an artifact"). It records every request with its
``Authorization`` header, so tests can prove where the token went.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.test_serve import free_port

OWNER, REPO = "acme", "config"
REPO_ID = 1001
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
PERSON = {"login": "asha", "id": 7, "type": "User"}


@dataclass
class State:
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    files: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    approvals: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    busy: dict[str, str] = field(default_factory=dict)  # workflow file -> status
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(5000))
    per_page_cap: int = 2  # small pages, so pagination is exercised
    ssh_keys: list[str] = field(default_factory=list)  # GET /meta's host keys


class GitHubDouble:
    def __init__(self) -> None:
        self.state = State()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = f"http://localhost:{self.port}"  # another origin, as GitHub's storage

    # -- what tests set up --------------------------------------------------------
    def pull(
        self,
        number: int,
        *,
        head: str,
        merged: bool = True,
        base: str = "main",
        fork: str | None = None,
        files: tuple[str, ...] = ("manifests/trunks.yaml",),
    ) -> None:
        repo = {"full_name": fork or f"{OWNER}/{REPO}", "id": 9 if fork else REPO_ID}
        self.state.pulls[number] = {
            "number": number,
            "state": "closed" if merged else "open",
            "merged": merged,
            "merged_at": "2026-12-01T10:00:00Z" if merged else None,
            "base": {"ref": base, "sha": "b" * 40, "repo": {"full_name": f"{OWNER}/{REPO}"}},
            "head": {"ref": f"topic-{number}", "sha": head, "repo": repo},
        }
        self.state.files[number] = [{"filename": f, "status": "modified"} for f in files]

    def merged_commit(self, sha: str, number: int) -> None:
        self.state.commit_pulls[sha] = [number]

    def plan_run(
        self,
        run_id: int,
        *,
        path: str = ".github/workflows/plan.yml",
        event: str = "pull_request_target",
        conclusion: str = "success",
    ) -> None:
        self.state.runs[run_id] = {
            "id": run_id,
            "path": path,
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
            "head_sha": "c" * 40,
            "head_branch": "main",
            "repository": {"id": REPO_ID, "full_name": f"{OWNER}/{REPO}"},
        }

    def artifact(
        self,
        name: str,
        files: dict[str, bytes],
        *,
        run_id: int,
        expired: bool = False,
        head_repository_id: int = REPO_ID,
    ) -> int:
        artifact_id = next(self.state.ids)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for file, content in files.items():
                archive.writestr(file, content)
        self.state.blobs[artifact_id] = buffer.getvalue()
        self.state.artifacts[artifact_id] = {
            "id": artifact_id,
            "node_id": f"MDg6QXJ0aWZhY3Qx{artifact_id}",
            "name": name,
            "size_in_bytes": len(buffer.getvalue()),
            "url": f"{self.url}/repos/{OWNER}/{REPO}/actions/artifacts/{artifact_id}",
            "archive_download_url": (
                f"{self.url}/repos/{OWNER}/{REPO}/actions/artifacts/{artifact_id}/zip"
            ),
            "expired": expired,
            "created_at": f"2026-12-01T10:{artifact_id % 60:02d}:00Z",
            "expires_at": "2027-03-01T10:00:00Z",
            "updated_at": "2026-12-01T10:00:00Z",
            "digest": None,
            "workflow_run": {
                "id": run_id,
                "repository_id": REPO_ID,
                "head_repository_id": head_repository_id,
                "head_branch": "main",
                "head_sha": "c" * 40,
            },
        }
        return artifact_id

    def comment(self, number: int, body: str, user: dict[str, Any] = BOT) -> int:
        comment_id = next(self.state.ids)
        self.state.comments.setdefault(number, []).append(
            {"id": comment_id, "body": body, "user": dict(user), "created_at": "2026-12-01"}
        )
        return comment_id

    def bodies(self, number: int) -> list[str]:
        return [c["body"] for c in self.state.comments.get(number, [])]

    # -- the API ---------------------------------------------------------------------
    def _page(self, request: Request, items: list[Any], wrap: str | None = None) -> Response:
        per_page = min(int(request.query_params.get("per_page", 30)), self.state.per_page_cap)
        page = int(request.query_params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query = dict(request.query_params) | {"page": str(page + 1)}
            link = f"{self.url}{request.url.path}?" + "&".join(f"{k}={v}" for k, v in query.items())
            headers["link"] = f'<{link}>; rel="next"'
        body: Any = {"total_count": len(items), wrap: chunk} if wrap else chunk
        return JSONResponse(body, headers=headers)

    def app(self) -> Starlette:
        state = self.state
        base = f"/repos/{OWNER}/{REPO}"

        async def log(request: Request) -> None:
            auth = request.headers.get("authorization", "")
            state.requests.append((request.method, str(request.url), auth))

        async def issue_comments(request: Request) -> Response:
            await log(request)
            number = int(request.path_params["number"])
            if request.method == "POST":
                body = (await request.json())["body"]
                comment_id = self.comment(number, body)
                return JSONResponse({"id": comment_id, "body": body, "user": BOT}, 201)
            return self._page(request, state.comments.get(number, []))

        async def edit_comment(request: Request) -> Response:
            await log(request)
            comment_id = int(request.path_params["comment_id"])
            for listed in state.comments.values():
                for comment in listed:
                    if comment["id"] == comment_id:
                        comment["body"] = (await request.json())["body"]
                        return JSONResponse(comment)
            return JSONResponse({"message": "Not Found"}, 404)

        async def issues(request: Request) -> Response:
            await log(request)
            if request.method == "POST":
                sent = await request.json()
                number = max([*state.issues, *state.pulls, 0]) + 1
                state.issues[number] = {
                    "number": number,
                    "title": sent["title"],
                    "body": sent["body"],
                    "state": "open",
                    "labels": [{"name": name} for name in sent.get("labels", [])],
                    "user": BOT,
                }
                return JSONResponse(state.issues[number], 201)
            wanted = request.query_params.get("labels")
            open_only = request.query_params.get("state", "open") == "open"
            listed = [
                i
                for i in state.issues.values()
                if (not open_only or i["state"] == "open")
                and (not wanted or wanted in {label["name"] for label in i["labels"]})
            ]
            return self._page(request, listed)

        async def issue(request: Request) -> Response:
            await log(request)
            found = state.issues[int(request.path_params["number"])]
            found.update(await request.json())
            return JSONResponse(found)

        async def pull(request: Request) -> Response:
            await log(request)
            number = int(request.path_params["number"])
            if number not in state.pulls:
                return JSONResponse({"message": "Not Found"}, 404)
            return JSONResponse(state.pulls[number])

        async def pull_files(request: Request) -> Response:
            await log(request)
            return self._page(request, state.files.get(int(request.path_params["number"]), []))

        async def commit_pulls(request: Request) -> Response:
            await log(request)
            numbers = state.commit_pulls.get(request.path_params["sha"], [])
            return JSONResponse([state.pulls[n] for n in numbers])

        async def run(request: Request) -> Response:
            await log(request)
            return JSONResponse(state.runs[int(request.path_params["run_id"])])

        async def approvals(request: Request) -> Response:
            await log(request)
            return JSONResponse(state.approvals.get(int(request.path_params["run_id"]), []))

        async def workflow_runs(request: Request) -> Response:
            await log(request)
            status = state.busy.get(request.path_params["workflow"])
            count = 1 if status and status == request.query_params.get("status") else 0
            runs = [{"id": 1, "status": status}] if count else []
            return JSONResponse({"total_count": count, "workflow_runs": runs})

        async def artifacts(request: Request) -> Response:
            await log(request)
            name = request.query_params.get("name")
            listed = [a for a in state.artifacts.values() if not name or a["name"] == name]
            return self._page(request, listed, wrap="artifacts")

        async def download(request: Request) -> Response:
            await log(request)
            artifact_id = int(request.path_params["artifact_id"])
            location = f"{self.storage}/_storage/{artifact_id}?sig=signed"
            return Response(status_code=302, headers={"location": location})

        async def meta(request: Request) -> Response:
            # GET /meta: "ssh_keys" and their fingerprints, beside the IP ranges.
            fingerprints = {f"SHA256_{n}": "..." for n, _ in enumerate(self.state.ssh_keys)}
            return JSONResponse(
                {
                    "verifiable_password_authentication": False,
                    "ssh_key_fingerprints": fingerprints,
                    "ssh_keys": self.state.ssh_keys,
                    "hooks": ["192.30.252.0/22"],
                    "git": ["192.30.252.0/22"],
                }
            )

        async def storage(request: Request) -> Response:
            await log(request)
            return Response(state.blobs[int(request.path_params["artifact_id"])])

        both = ["GET", "POST"]
        return Starlette(
            routes=[
                Route(base + "/issues/{number:int}/comments", issue_comments, methods=both),
                Route(base + "/issues/comments/{comment_id:int}", edit_comment, methods=["PATCH"]),
                Route(base + "/issues", issues, methods=["GET", "POST"]),
                Route(base + "/issues/{number:int}", issue, methods=["PATCH"]),
                Route(base + "/pulls/{number:int}", pull),
                Route(base + "/pulls/{number:int}/files", pull_files),
                Route(base + "/commits/{sha}/pulls", commit_pulls),
                Route(base + "/actions/runs/{run_id:int}", run),
                Route(base + "/actions/runs/{run_id:int}/approvals", approvals),
                Route(base + "/actions/workflows/{workflow}/runs", workflow_runs),
                Route(base + "/actions/artifacts", artifacts),
                Route(base + "/actions/artifacts/{artifact_id:int}/zip", download),
                Route("/_storage/{artifact_id:int}", storage),
                Route("/meta", meta),
            ]
        )  # fmt: skip

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "GITHUB_API_URL": self.url,
            "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "77",
            "GH_TOKEN": "ghs_double_token_0123456789abcdef",
            **extra,
        }


@contextmanager
def serving() -> Iterator[GitHubDouble]:
    double = GitHubDouble()
    config = uvicorn.Config(
        double.app(), host="127.0.0.1", port=double.port, log_level="error", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield double
    finally:
        server.should_exit = True
        thread.join(5)
