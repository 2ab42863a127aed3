"""Drift as text, markdown (the drift issue's body) or JSON: what changed by hand.

Pure: takes the plan drift made, returns a string, telling drift (live changed outside
the reconciler) apart from manifest changes not applied yet and trunks made by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.plan.actions import (
    Action,
    Kind,
    Notice,
    NoticeKind,
    Operation,
    Origin,
    Plan,
    Resource,
)
from reconciler.render.plans import KEYS, _line, describe, escape, what

DRIFT_MARKER = "<!-- reconciler-drift:{accounts} -->"


def drift_parts(plan: Plan) -> tuple[list[Action], list[Action], list[Notice]]:
    """(drift: live changed by hand since the last apply; pending: manifest changes not yet
    applied; unreadable: trunks that could not be checked)."""
    drift = [a for a in plan.actions if a.origin is Origin.DRIFT]
    pending = [a for a in plan.actions if a.origin is not Origin.DRIFT]
    unreadable = [n for n in plan.notices if n.kind is NoticeKind.UNREADABLE]
    return drift, pending, unreadable


def unmanaged(plan: Plan) -> list[Notice]:
    """Live trunks in a managed account that nobody declared and no ledger holds: made
    outside the reconciler (profile full only, which can list trunks)."""
    return [n for n in plan.notices if n.kind is NoticeKind.UNMANAGED]


def _by_hand(action: Action) -> str:
    """What someone did outside the reconciler, read from what apply would do about it
    (``before`` is live state, ``after`` what the manifests say)."""
    before, after = dict(action.before or {}), dict(action.after or {})
    thing = what(action)
    if action.resource is Resource.TRUNK:
        if action.operation is Operation.CREATE_TRUNK:
            return "trunk deleted by hand"
        if action.operation is Operation.RENAME_TRUNK:
            return f"trunk renamed by hand: {after.get('name')} -> {before.get('name')}"
        return "trunk changed by hand"
    if action.kind is Kind.CREATE:
        return f"{thing} removed by hand"
    if action.kind is Kind.DELETE:
        return f"{thing} added by hand"
    changed = [
        f"{name} {after.get(name)} -> {before.get(name)}"
        for name in after
        if name not in KEYS and before.get(name) != after.get(name)
    ]
    return f"{thing} changed by hand: {', '.join(changed)}" if changed else f"{thing} changed"


def drift_line(action: Action) -> str:
    return f"{action.address}: {_by_hand(action)}; apply would: {describe(action)}"


@dataclass(frozen=True)
class _Found:
    """What a drift run found, sorted for the renderers."""

    plan: Plan
    coverage: Sequence[str]
    earlier: Sequence[str]
    partial: bool
    drifted: list[Action]
    pending: list[Action]
    unreadable: list[Notice]
    strangers: list[Notice]

    @property
    def headline(self) -> str:
        found, strangers = self.drifted, self.strangers
        if found:
            said = f"Drift: {len(found)} change(s) made outside the reconciler since the last apply"
            return said + (f", and {len(strangers)} trunk(s) made outside it" if strangers else "")
        if strangers:
            return f"Drift: {len(strangers)} trunk(s) made outside the reconciler"
        if self.earlier:
            return (
                f"Drift: {len(self.earlier)} change(s) found by an earlier run, not checked again"
            )
        if self.partial:
            return "No drift in the trunks checked this run"
        return "No drift: live state matches the last apply"


def drift(
    plan: Plan,
    fmt: str = "text",
    coverage: Sequence[str] = (),
    earlier: Sequence[str] = (),
    *,
    partial: bool = False,
) -> str:
    """``coverage``: one line per account saying how much of it this run checked;
    ``earlier``: drift an earlier run found on trunks this run did not check again;
    ``partial``: some trunks were not checked (a budget), so "no drift" covers only some."""
    drifted, pending, unreadable = drift_parts(plan)
    found = _Found(plan, coverage, earlier, partial, drifted, pending, unreadable, unmanaged(plan))
    render = {"json": _json, "markdown": _markdown}.get(fmt, _text)
    return render(found)


def _json(found: _Found) -> str:
    document = {
        "format_version": 1,
        "drift": bool(found.drifted or found.earlier or found.strangers),
        "accounts": [account.account for account in found.plan.accounts],
        "drifted": [action.document() for action in found.drifted],
        "pending": [action.document() for action in found.pending],
        "unreadable": [notice.document() for notice in found.unreadable],
        "unmanaged": [notice.document() for notice in found.strangers],
        "checksum": found.plan.checksum,
        "coverage": list(found.coverage),
        "earlier": list(found.earlier),
    }
    return json.dumps(document, indent=2) + "\n"


def _markdown(found: _Found) -> str:
    accounts = ",".join(account.account for account in found.plan.accounts)
    lines = [
        DRIFT_MARKER.format(accounts=accounts),
        f"### Exotel drift: {accounts}",
        "",
        f"**{found.headline}.**",
        "",
        *[f"- {escape(line)}" for line in found.coverage],
        *([""] if found.coverage else []),
    ]
    if found.drifted:
        lines += [
            "Someone changed these trunks by hand. `reconciler apply` puts them back as git "
            "says; or change the manifests to keep what was done.",
            "",
            "| trunk | resource | what apply would do |",
            "|---|---|---|",
        ]
        for a in found.drifted:
            thing = escape(what(a))
            lines.append(f"| `{a.account}/{a.trunk}` | {thing} | {escape(describe(a))} |")
        lines.append("")
    if found.strangers:
        lines += [
            "Trunks made outside the reconciler, in an account it manages (left alone; "
            "or delete one):",
            *[f"- {n.account}: {escape(n.message)}" for n in found.strangers],
            "",
        ]
    if found.pending:
        lines += [
            f"Pending manifest changes not yet applied: {len(found.pending)} (see the plan).",
            "",
        ]
    if found.earlier:
        lines += ["Found earlier, on trunks not checked again this run:"]
        lines += [f"- {escape(line)}" for line in found.earlier] + [""]
    if found.unreadable:
        lines += ["Could not be checked:"]
        lines += [f"- {escape(n.message)}" for n in found.unreadable] + [""]
    return "\n".join(lines) + "\n"


def _text(found: _Found) -> str:
    lines = [found.headline + ".", *[f"  {line}" for line in found.coverage]]
    if found.drifted:
        lines += ["", *[f"  {a.symbol} {drift_line(a)}" for a in found.drifted]]
    if found.strangers:
        lines += ["", "Trunks made outside the reconciler (left alone; or delete one):"]
        lines += [f"  ? {n.account}: {n.message}" for n in found.strangers]
    if found.pending:
        lines += ["", f"Pending manifest changes, not yet applied ({len(found.pending)}):"]
        lines += [_line(a) for a in found.pending]
    if found.earlier:
        lines += ["", "Found earlier, on trunks not checked again this run:"]
        lines += [f"  {line}" for line in found.earlier]
    if found.unreadable:
        lines += ["", "Could not be checked:", *[f"  ? {n.message}" for n in found.unreadable]]
    return "\n".join(lines) + "\n"
