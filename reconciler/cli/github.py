"""GitHub Actions integration, without lock-in: files and workflow commands, nothing more.

Called by the CLI when ``GITHUB_ACTIONS=true`` (or ``--github``). Writes the markdown of
a plan, apply or drift to ``$GITHUB_STEP_SUMMARY``, sets step outputs in
``$GITHUB_OUTPUT`` and prints ``::error`` annotations for manifest problems so they
show on the pull request's diff. Anywhere else the commands behave exactly the same,
minus these extras. Nothing here sees a secret: it is handed rendered text.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.manifests.problems import Problem, Severity


def enabled(flag: bool, environ: Mapping[str, str]) -> bool:
    return flag or environ.get("GITHUB_ACTIONS") == "true"


def _append(variable: str, text: str, environ: Mapping[str, str]) -> None:
    target = environ.get(variable)
    if target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(text)


def summary(markdown: str, environ: Mapping[str, str] = os.environ) -> None:
    _append(
        "GITHUB_STEP_SUMMARY", markdown if markdown.endswith("\n") else markdown + "\n", environ
    )


def outputs(values: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> None:
    """Each value between random delimiters, so no value (a path with a newline in it,
    say) can end early and set an output of its own."""
    text = ""
    for name, value in values.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        text += f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    _append("GITHUB_OUTPUT", text, environ)


def run_link(environ: Mapping[str, str]) -> str:
    """Markdown link to this workflow run, or "" off GitHub."""
    server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    run = environ.get("GITHUB_RUN_ID")
    if not (server and repository and run):
        return ""
    attempt = environ.get("GITHUB_RUN_ATTEMPT", "1")
    return f"[run {run}]({server}/{repository}/actions/runs/{run}/attempts/{attempt})"


def footer(environ: Mapping[str, str], now: datetime | None = None) -> str:
    """What every comment says of itself: the commit, the run, the time. The commit is
    ``RECONCILER_COMMIT`` when the workflow names one (a pull request's head), else the
    run's ``GITHUB_SHA``."""
    commit = environ.get("RECONCILER_COMMIT") or environ.get("GITHUB_SHA") or ""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"commit `{commit[:12]}`" if commit else "", run_link(environ), when]
    return "<sub>" + " · ".join(part for part in parts if part) + "</sub>"


def elsewhere(environ: Mapping[str, str]) -> str:
    link = run_link(environ)
    return f"the whole of it is in {link} (its summary and artifacts)" if link else ""


PROVENANCE = {
    "repository": "GITHUB_REPOSITORY",
    "event": "GITHUB_EVENT_NAME",
    "workflow_ref": "GITHUB_WORKFLOW_REF",
    "workflow_sha": "GITHUB_WORKFLOW_SHA",
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
}


def provenance(environ: Mapping[str, str]) -> dict[str, Any]:
    """Where a saved plan was made, from the runner's default variables and its event
    file (GitHub's "Variables reference" and the pull_request webhook payload); empty off
    GitHub Actions. A signed plan carries it under its signature, so apply can check the
    run that made it planned a pull request into the branch it applies."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return {}
    found: dict[str, Any] = {name: environ.get(var, "") for name, var in PROVENANCE.items()}
    event: Any = {}
    with contextlib.suppress(OSError, ValueError):
        event = json.loads(Path(environ.get("GITHUB_EVENT_PATH", "")).read_text("utf-8"))
    pull = event.get("pull_request") if isinstance(event, dict) else None
    if isinstance(pull, dict):
        found["pull_request"] = {
            "number": pull.get("number"),
            "head_sha": (pull.get("head") or {}).get("sha"),
            "base_ref": (pull.get("base") or {}).get("ref"),
            "base_sha": (pull.get("base") or {}).get("sha"),
        }
    return found


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotate(problems: Iterable[Problem]) -> list[str]:
    """Workflow commands that put each problem on its file and line in the pull request."""
    lines = []
    for problem in problems:
        level = "error" if problem.severity is Severity.ERROR else "warning"
        where = f"file={_escape_property(problem.file)}"
        if problem.line:
            where += f",line={problem.line},col={problem.column}"
        title = _escape_property(problem.path or "manifest")
        lines.append(f"::{level} {where},title={title}::{_escape_data(problem.message)}")
    return lines
