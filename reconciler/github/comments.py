"""What the workflows write on GitHub: one sticky comment per pull request, one issue per
kind of alarm, and error text made safe to show there.

Called by ``reconciler ci comment`` and ``reconciler ci issue``. A comment or issue is
found again by the HTML marker its body starts with (``<!-- reconciler-plan:``) and by
its author (the workflow's own identity, ``github-actions[bot]`` by default), so a
person's comment that quotes a marker is never overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.github.rest import Client

BOT = "github-actions[bot]"
COMMENT_LIMIT = 65_000  # GitHub refuses bodies over 65,536 characters
ERROR_TAIL = 6_000  # the end of a failed step's stderr, where the reason is
STALE = "<!-- reconciler-plan:stale -->"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWORDS|PRIVATE)", re.IGNORECASE)
# Shapes of credentials that may reach an error message from elsewhere (a URL, a header).
PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"),
    re.compile(r"(?i)\b(authorization|bearer|basic)\b[:=]?\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
)
REDACTED = "[redacted]"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Every value that could be a secret: variables named like one, and each value of a
    ``NAME=value`` bundle (RECONCILER_SECRETS, SIP_PASSWORDS)."""
    values = set()
    for name, value in environ.items():
        if not SECRET_NAME.search(name) or not value:
            continue
        values.add(value)
        for line in value.splitlines():
            _, equals, item = line.partition("=")
            if equals and item.strip():
                values.add(item.strip())
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str]) -> str:
    for value in secret_values(environ):
        text = text.replace(value, REDACTED)
    for pattern in PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def fenced(text: str) -> str:
    """A code block no backtick run in ``text`` can close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _mine(item: Mapping[str, Any], marker: str, author: str) -> bool:
    user = item.get("user") or {}
    return user.get("login") == author and (item.get("body") or "").startswith(marker)


def _bounded(body: str) -> str:
    if len(body) <= COMMENT_LIMIT:
        return body
    return body[: COMMENT_LIMIT - 80] + "\n\n(cut: the rest is in the run's summary)\n"


@dataclass(frozen=True)
class Posted:
    action: str  # created, updated, closed, unchanged
    number: int  # the comment's or issue's id/number; 0 when nothing was written


def find_comment(client: Client, pr: int, marker: str, author: str = BOT) -> dict[str, Any] | None:
    for comment in client.paginate(client.repo(f"/issues/{pr}/comments")):
        if _mine(comment, marker, author):
            found: dict[str, Any] = comment
            return found
    return None


def upsert_comment(
    client: Client, pr: int, body: str, *, marker: str = "<!-- reconciler-plan:", author: str = BOT
) -> Posted:
    existing = find_comment(client, pr, marker, author)
    if existing is not None:
        client.patch(client.repo(f"/issues/comments/{existing['id']}"), {"body": _bounded(body)})
        return Posted("updated", int(existing["id"]))
    created = client.post(client.repo(f"/issues/{pr}/comments"), {"body": _bounded(body)})
    return Posted("created", int(created["id"]))


def stale_body(previous: str, *, head: str, run_url: str, error: str) -> str:
    """The plan comment, marked stale: a failed plan must never leave an older plan
    looking current. The previous plan stays below, behind the warning."""
    older = previous
    if older.startswith(STALE):
        cut = older.find("\n<!-- reconciler-plan:", len(STALE))
        older = older[cut + 1 :] if cut >= 0 else ""
    head_text = head[:12] if head else "this commit"
    lines = [
        STALE,
        "> [!CAUTION]",
        f"> **Stale:** planning commit `{head_text}` failed ([run]({run_url})). The plan "
        "below, if any, is for an earlier commit: do not merge on it.",
        "",
        fenced(error[-ERROR_TAIL:]) if error.strip() else "See the run for why.",
        "",
    ]
    return "\n".join(lines) + ("\n" + older if older else "")


def mark_stale(
    client: Client, pr: int, *, head: str, run_url: str, error: str, author: str = BOT
) -> Posted:
    existing = find_comment(client, pr, "<!-- reconciler-plan:", author)
    body = stale_body(existing["body"] if existing else "", head=head, run_url=run_url, error=error)
    return upsert_comment(client, pr, body, author=author)


def sync_issue(
    client: Client,
    *,
    label: str,
    marker: str,
    title: str,
    body: str,
    present: bool,
    resolved: str,
    author: str = BOT,
) -> Posted:
    """One open issue per alarm: opened or updated while ``present``, closed with a
    comment saying ``resolved`` once it is not."""
    existing = None
    for issue in client.paginate(client.repo("/issues"), state="open", labels=label):
        if "pull_request" not in issue and _mine(issue, marker, author):
            existing = issue
            break
    if present:
        if existing is not None:
            number = int(existing["number"])
            client.patch(client.repo(f"/issues/{number}"), {"body": _bounded(body)})
            return Posted("updated", number)
        made = client.post(
            client.repo("/issues"), {"title": title, "body": _bounded(body), "labels": [label]}
        )
        return Posted("created", int(made["number"]))
    if existing is None:
        return Posted("unchanged", 0)
    number = int(existing["number"])
    client.post(client.repo(f"/issues/{number}/comments"), {"body": resolved})
    client.patch(client.repo(f"/issues/{number}"), {"state": "closed"})
    return Posted("closed", number)


def busy(client: Client, workflow: str) -> str | None:
    """The status of a run of ``workflow`` that is not finished, or None ("List workflow
    runs for a workflow", filtered by status)."""
    for status in ("in_progress", "queued", "waiting", "pending", "requested"):
        runs = client.get(client.repo(f"/actions/workflows/{workflow}/runs"), status=status)
        if runs.get("total_count"):
            return status
    return None
