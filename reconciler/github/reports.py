"""What an apply run says on each merged pull request it carried. Pure but for reading
the apply jobs' kept reports.

Called by ``reconciler ci report`` (the apply workflow's last job) and ``reconciler ci
save`` (which reads how each account's apply ended). Each apply job keeps an artifact
named ``apply-<account>-<run id>-<attempt>``; after "re-run failed jobs" several attempts
of one account are there, and only the newest counts. Account names may contain ``-`` and
attempts run past 9, so a folder belongs to an account only when its whole name is that
account's prefix followed by an attempt number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HEAD = re.compile(r"^<!-- reconciler-apply:[^\n]*:([a-z-]+) -->$")


def newest(folder: Path, kind: str, run_id: str) -> dict[str, Path]:
    """Per key, the folder of its newest attempt's artifact ``<kind>-<key>-<run id>-<n>``."""
    pattern = re.compile(rf"^{re.escape(kind)}-(.+)-{re.escape(run_id)}-(\d+)$")
    found: dict[str, tuple[int, Path]] = {}
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        matched = pattern.match(entry.name)
        if matched and entry.is_dir():
            key, number = matched.group(1), int(matched.group(2))
            if key not in found or number > found[key][0]:
                found[key] = (number, entry)
    return {key: path for key, (_, path) in found.items()}


def newest_attempts(folder: Path, accounts: Sequence[str], run_id: str) -> dict[str, Path]:
    """Per account, the folder of its newest attempt's artifact (absent: kept nothing)."""
    kept = newest(folder, "apply", run_id)
    return {account: kept[account] for account in accounts if account in kept}


def status(kept: Path) -> str:
    """How an account's apply ended, from its report's first line (``apply --report``):
    applied, nothing, not-converged, refused, failed, interrupted, already; or missing."""
    report = kept / "report.md"
    if not report.exists():
        return "missing"
    first = report.read_text(encoding="utf-8").split("\n", 1)[0]
    matched = HEAD.match(first)
    return matched.group(1) if matched else "missing"


@dataclass(frozen=True)
class Results:
    """The ``needs.<job>.result`` of each job: success, failure, cancelled or skipped."""

    reviewed: str
    apply: str
    save: str


WHY = {
    "fork": (
        "It came from a fork, so it was not planned with production credentials: its "
        "changes are applied only once a reviewed plan covers them (the next pull request "
        "that touches the manifests plans them too)."
    ),
    "missing": (
        "No genuine reviewed plan of its merged head was found ({detail}): its changes are "
        "applied only once a reviewed plan covers them (the next pull request that touches "
        "the manifests plans them too)."
    ),
}


def body(
    pr: Mapping[str, object],
    carried: Sequence[Mapping[str, object]],
    reports: Sequence[str],
    results: Results,
) -> str:
    """The comment for one merged pull request."""
    if results.reviewed != "success":
        return (
            "### Exotel apply: could not start\n\nFinding the reviewed plans failed "
            f"({results.reviewed}), so nothing was applied. See the run, fix the cause, and "
            "re-run it."
        )
    joined = "\n\n".join(reports)
    if results.apply == "cancelled":
        return (
            "### Exotel apply: cancelled\n\nThe run was cancelled. The reconciler stops "
            "cleanly (the ledger keeps what landed, the lock is released); re-run the "
            f"workflow to finish.\n\n{joined}"
        )
    if results.apply == "skipped":
        return "### Exotel apply: nothing to apply\n\nNo account is declared in the manifests."
    reviewed = [f"#{p['number']}" for p in carried if p.get("status") == "reviewed"]
    text = f"### Exotel apply of {', '.join(reviewed) or 'no reviewed plan'}\n\n"
    why = WHY.get(str(pr.get("status")))
    if why:
        text += f"> [!WARNING]\n> {why.format(detail=pr.get('detail') or 'see the run')}\n\n"
    text += joined
    if results.save == "failure":
        text += (
            "\n\n> [!CAUTION]\n> The ledger could not be saved on the state branch. It is "
            "kept in this run's artifacts; the `save` job's log gives the command that "
            "pushes it."
        )
    return text


def kept_reports(folders: Mapping[str, Path]) -> list[str]:
    texts = []
    for account, folder in sorted(folders.items()):
        report = folder / "report.md"
        if report.exists():
            texts.append(report.read_text(encoding="utf-8"))
        else:
            texts.append(f"The apply job of {account} kept no report: see the run.")
    return texts
