"""What an apply did, as text, markdown or JSON (``apply``'s report and ``--report``).

Pure: takes an ``ApplyResult``, returns a string, in the plan's own words
(``render.plans``).
"""

from __future__ import annotations

import json

from reconciler.plan.actions import (
    ApplyResult,
    Outcome,
    Status,
)
from reconciler.render.plans import _line, describe


def _outcome_line(outcome: Outcome) -> str:
    action = outcome.action
    detail = f": {outcome.detail}" if outcome.detail and outcome.status is not Status.DONE else ""
    return f"{action.symbol} {action.address}  {describe(action)}{detail}"


def _converged(result: ApplyResult) -> str:
    skipped = sum(account.not_refreshed for account in result.plan.accounts)
    if not skipped:
        return "Converged: live state matches the manifests."
    return (
        f"Converged: what was planned is applied ({skipped} trunk(s) were not read: their "
        "manifests match the last apply, and drift on them is drift's to find)."
    )


def _unconverged(result: ApplyResult, where: str = "below") -> str:
    not_done = sum(1 for o in result.outcomes if o.status in (Status.FAILED, Status.SKIPPED))
    said = [f"{not_done} action(s) did not succeed"] if not_done else []
    if result.remaining.actions:
        said.append(f"{len(result.remaining.actions)} action(s) remain (listed {where})")
    return f"Not converged: {'; '.join(said)}; fix what failed and apply again."


def report(result: ApplyResult, fmt: str = "text") -> str:
    """What an apply did: done, failed, skipped, manual steps, and what is left."""
    groups: dict[Status, list[Outcome]] = {status: [] for status in Status}
    for outcome in result.outcomes:
        groups[outcome.status].append(outcome)
    converged = result.converged
    if fmt == "json":
        return (
            json.dumps(
                {
                    "format_version": 1,
                    "checksum": result.plan.checksum,
                    "converged": converged,
                    **{
                        str(status): [
                            {
                                "address": o.action.address,
                                "operation": o.action.operation,
                                "detail": o.detail,
                            }
                            for o in outcomes
                        ]
                        for status, outcomes in groups.items()
                    },
                    "remaining": [action.document() for action in result.remaining.actions],
                },
                indent=2,
            )
            + "\n"
        )
    counts = ", ".join(f"{len(outcomes)} {status}" for status, outcomes in groups.items())
    where = "below" if fmt == "markdown" else "above"
    verdict = _converged(result) if converged else _unconverged(result, where)
    if fmt == "markdown":
        lines = [f"### Exotel apply: {counts}", "", f"**{verdict}**", ""]
        for status, outcomes in groups.items():
            if outcomes:
                lines += [f"#### {status}", "", "```diff", *map(_outcome_line, outcomes), "```", ""]
        if not converged:
            lines += [
                "#### remaining",
                "",
                "```diff",
                *[_line(a, pad=False) for a in result.remaining.actions],
                "```",
            ]
        return "\n".join(lines) + "\n"
    lines = [f"Apply: {counts}."]
    for status, outcomes in groups.items():
        if outcomes and status is not Status.DONE:
            lines += ["", f"{status.capitalize()}:", *[f"  {_outcome_line(o)}" for o in outcomes]]
    if not converged:
        lines += ["", "Remaining:", *[_line(a) for a in result.remaining.actions]]
    lines += ["", verdict]
    return "\n".join(lines) + "\n"
