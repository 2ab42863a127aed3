"""Plans as text, markdown and JSON: what people review and what machines read.

Called by the CLI. Pure: takes a :class:`Plan`, returns a string. One description of
each action serves every format (no copy-pasted printers, octoDNS's one regret):

* text: Terraform-like, a symbol per action and a summary line; colour only when the
  caller says the output is a terminal;
* markdown: for a pull-request comment (docs/architecture.md, "Plans"): a hidden marker line, the
  counts, a warning block for deletes, replacements, manual steps and rail breaches, a
  table per trunk, the full plan in ``<details>`` as a ``diff`` fence; never over 65,000
  characters (GitHub's comment limit), truncated with a notice when it would be;
* JSON: ``format_version`` 1, the checksum over the canonical actions, every action.

No format ever shows a secret: plans hold none (passwords are ``(sensitive)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler import diagram
from reconciler.plan.actions import (
    Action,
    Kind,
    NoticeKind,
    Operation,
    Origin,
    Plan,
    Resource,
)

TAKES_SHOWN = 12  # children named under a trunk delete before "and N more"
MARKDOWN_LIMIT = 65_000  # GitHub refuses comments over 65,536 characters
MARKER = "<!-- reconciler-plan:{accounts} -->"
COLOURS = {
    Kind.CREATE: "\033[32m",
    Kind.UPDATE: "\033[33m",
    Kind.DELETE: "\033[31m",
    Kind.REPLACE: "\033[35m",
    Kind.MANUAL: "\033[1;31m",
}
RESET = "\033[0m"
# One rule for every format (docs/plans.md, "Warnings"): a warning is what a reviewer must act on
# or would be surprised by; a note is context. Deletes, replacements and manual steps are
# warnings too, told from the actions themselves.
LOUD = (
    NoticeKind.RAIL,
    NoticeKind.REPLACEMENT,
    NoticeKind.DID_ELSEWHERE,
    NoticeKind.UNREADABLE,
    NoticeKind.NOT_DECLARED,
    NoticeKind.PASSWORD,
    NoticeKind.SEAM,
)
WARNED = (Kind.DELETE, Kind.REPLACE, Kind.MANUAL)
KEYS = frozenset({"number", "ip", "uri", "username"})  # already in the address
PARTNER_RESOURCES = frozenset(
    {
        Resource.LIVEKIT_INBOUND_TRUNK,
        Resource.LIVEKIT_OUTBOUND_TRUNK,
        Resource.LIVEKIT_DISPATCH_RULE,
    }
)


def _value(fields: dict[str, Any] | None, name: str) -> str:
    value = (fields or {}).get(name)
    return "(none)" if value is None else str(value)


def what(action: Action) -> str:
    """The resource an action is about: ``phone_number +9180...``, ``alias``, ``trunk``."""
    key = "" if action.key == str(action.resource) else action.key
    return f"{action.resource} {key}".strip()


def describe(action: Action) -> str:
    """One line saying what the action does to its resource."""
    before, after = dict(action.before or {}), dict(action.after or {})
    if action.kind is Kind.MANUAL:
        return f"manual step: {action.reason}"
    if action.resource is Resource.ROUTE:
        if action.after is None:
            return f"route removed: {action.reason}"
        after = dict(action.after)
        changes = after.get("changes") or []
        if changes:
            shown = "; ".join(changes[:TAKES_SHOWN])
            more = f"; and {len(changes) - TAKES_SHOWN} more" if len(changes) > TAKES_SHOWN else ""
            return f"route changed: {shown}{more}: {action.reason}"
        return (
            f"route to {after['default_trunk']} ({after['rules']} rule(s), handoff "
            f"{'on' if after['handoff'] else 'off'}): {action.reason}"
        )
    if action.resource is Resource.TRUNK:
        if action.operation is Operation.CREATE_TRUNK:
            text = f"create trunk {after.get('name')} ({after.get('domain_name')})"
        elif action.operation is Operation.REPLACE_TRUNK:
            text = f"replace trunk {before.get('sid')}: {action.reason}"
        elif action.operation is Operation.DELETE_TRUNK:
            text = f"delete trunk {before.get('sid')}: {action.reason}"
            takes = before.get("takes") or []
            if takes:
                shown = ", ".join(takes[:TAKES_SHOWN])
                more = f" and {len(takes) - TAKES_SHOWN} more" if len(takes) > TAKES_SHOWN else ""
                text += f"; it takes {len(takes)} object(s) with it: {shown}{more}"
        elif action.operation is Operation.ADOPT_TRUNK:
            text = f"adopt trunk {after.get('sid')} (ledger only)"
        elif action.operation is Operation.RECORD_PROTECT:
            text = f"protect {before.get('protect')} -> {after.get('protect')} (ledger only)"
        else:
            text = f"rename {before.get('name')} -> {after.get('name')}"
        return text
    if action.kind is Kind.UPDATE and action.resource in PARTNER_RESOURCES:
        changed = [name for name in after if before.get(name) != after[name]]
        changes = "; ".join(f"{name} {before.get(name)} -> {after[name]}" for name in changed)
        return f"{changes or 'no managed field differs'}: {action.reason}"
    if action.kind is Kind.CREATE:
        return f"add{_details(after)}"
    if action.kind is Kind.DELETE:
        return f"remove{_details(before)}"
    return action.reason


def _details(fields: dict[str, Any]) -> str:
    shown = {k: v for k, v in fields.items() if k not in KEYS and v is not None}
    return ": " + ", ".join(f"{k} {v}" for k, v in shown.items()) if shown else ""


def by_trunk(actions: Iterable[Action]) -> list[Action]:
    """Actions grouped by trunk for reading (trunks in order of first action); within a
    trunk, execution order. Apply runs them in plan order, not this one."""
    groups: dict[tuple[str, str], list[Action]] = {}
    for action in actions:
        groups.setdefault((action.account, action.trunk), []).append(action)
    return [action for group in groups.values() for action in group]


def _line(action: Action, *, colour: bool = False, pad: bool = True, width: int = 0) -> str:
    drift = "  (drift)" if action.origin is Origin.DRIFT else ""
    symbol = f"{action.symbol:>3}" if pad else action.symbol
    if colour:
        symbol = f"{COLOURS[action.kind]}{symbol}{RESET}"
    return f"{symbol} {action.address:<{width}}  {describe(action)}{drift}"


def summary(plan: Plan) -> str:
    counts = plan.counts()
    manual = counts[Kind.MANUAL]
    return (
        f"{counts[Kind.CREATE]} to create, {counts[Kind.UPDATE]} to update, "
        f"{counts[Kind.DELETE]} to delete, {counts[Kind.REPLACE]} to replace, "
        f"{manual} manual step{'' if manual == 1 else 's'}"
    )


def _refresh_line(plan: Plan) -> list[str]:
    lines = []
    for account in plan.accounts:
        skipped = f", {account.not_refreshed} not refreshed" if account.not_refreshed else ""
        lines.append(
            f"Account {account.account} (sid {account.sid}, profile {account.profile}): "
            f"{account.refreshed} trunk(s) read{skipped}, {account.calls} API call(s)"
        )
    return lines


def no_changes(plan: Plan) -> str:
    """What an empty plan may claim: all of live state, or only what it read."""
    skipped = sum(account.not_refreshed for account in plan.accounts)
    if not skipped:
        return "No changes. Live state matches the manifests."
    read = sum(account.refreshed for account in plan.accounts)
    return (
        f"No changes in the {read} trunk(s) read. {skipped} trunk(s) were not read (the notes "
        "say why): drift on them was not looked for."
    )


def text(plan: Plan, *, colour: bool = False) -> str:
    lines = _refresh_line(plan)
    if not plan.has_changes:
        lines += ["", no_changes(plan)]
    else:
        lines.append("")
        width = min(72, max(len(action.address) for action in plan.actions))
        lines += [_line(a, colour=colour, width=width) for a in by_trunk(plan.actions)]
    loud, quiet = _told(plan)
    warned = [f"{a.kind} {a.address}: {describe(a)}" for a in plan.actions if a.kind in WARNED]
    if loud or warned:
        lines += ["", "Warnings:", *[f"  ! {line}" for line in [*loud, *warned]]]
    if quiet:
        lines += ["", "Notes:", *[f"  - {line}" for line in quiet]]
    lines += ["", f"Plan: {summary(plan)}.", f"Checksum: {plan.checksum}"]
    return "\n".join(lines) + "\n"


def _told(plan: Plan) -> tuple[list[str], list[str]]:
    """The notices as lines, warnings then notes, each once; named by account when the
    plan has more than one."""
    several = len(plan.accounts) > 1
    loud: list[str] = []
    quiet: list[str] = []
    for notice in plan.notices:
        line = f"{notice.account}: {notice.message}" if several else notice.message
        into = loud if notice.kind in LOUD else quiet
        if line not in into:
            into.append(line)
    return loud, quiet


def json_text(plan: Plan) -> str:
    return json.dumps(plan.document(), indent=2) + "\n"


def escape(value: str) -> str:
    """Safe inside a markdown table cell."""
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _warnings(plan: Plan) -> list[str]:
    items = [escape(line) for line in _told(plan)[0]]
    for action in plan.actions:
        if action.kind in WARNED:
            items.append(f"**{action.kind}** `{action.address}`: {escape(describe(action))}")
    if not items:
        return []
    return ["> [!WARNING]", *[f"> - {item}" for item in items], ""]


def _tables(actions: Iterable[Action]) -> list[str]:
    lines: list[str] = []
    current = None
    for action in actions:
        trunk = f"{action.account}/{action.trunk}"
        if trunk != current:
            current = trunk
            lines += [
                "",
                f"#### `{trunk}`",
                "",
                "| | resource | change | from |",
                "|---|---|---|---|",
            ]
        thing, change = escape(what(action)), escape(describe(action))
        lines.append(f"| `{action.symbol}` | {thing} | {change} | {action.origin} |")
    return lines


def _notes(plan: Plan) -> list[str]:
    quiet = _told(plan)[1]
    return ["", "Notes:", *[f"- {escape(line)}" for line in quiet]] if quiet else []


def bounded(
    document: str, *, footer: str = "", elsewhere: str = "", limit: int = MARKDOWN_LIMIT
) -> str:
    """The document with its footer, never over ``limit`` characters (GitHub refuses a
    comment over 65,536): cut at a line, saying where the whole of it is."""
    tail = f"\n{footer}\n" if footer else ""
    if len(document) + len(tail) <= limit:
        return document + tail
    where = elsewhere or "run the command again to see all of it"
    notice = f"\n\n> [!NOTE]\n> Too long for a comment, so it was cut here: {where}.\n"
    budget = limit - len(notice) - len(tail)
    return document[:budget].rsplit("\n", 1)[0] + notice + tail


def markdown(
    plan: Plan, *, limit: int = MARKDOWN_LIMIT, footer: str = "", elsewhere: str = ""
) -> str:
    accounts = ",".join(account.account for account in plan.accounts)
    head = [
        MARKER.format(accounts=accounts),
        f"### Exotel plan: {accounts or '(no accounts)'}",
        "",
        f"**{summary(plan)}** · checksum `{plan.checksum}`",
        "",
        *[f"- {line}" for line in _refresh_line(plan)],
        "",
    ]
    if not plan.has_changes:
        body = [*_warnings(plan), no_changes(plan), *_notes(plan)]
        return bounded("\n".join(head + body) + "\n", footer=footer, limit=limit)
    warnings = _warnings(plan)
    picture = diagram.fenced(diagram.changes(plan), title=f"What changes ({diagram.LEGEND}):")
    pictured = [picture] if picture else []
    tables = _tables(by_trunk(plan.actions))
    details = [
        "",
        f"<details><summary>Full plan ({len(plan.actions)} actions)</summary>",
        "",
        "```diff",
        # Symbols at column 0, so GitHub colours + and - (and marks ! and -/+).
        *[_line(action, pad=False) for action in by_trunk(plan.actions)],
        "```",
        "</details>",
    ]
    notes = _notes(plan)
    document = "\n".join(head + warnings + pictured + tables + notes + details) + "\n"
    tail = f"\n{footer}\n" if footer else ""
    if len(document) + len(tail) <= limit:
        return document + tail
    # Too long: the tables say it all once; the picture and the diff fence go first.
    where = elsewhere or "see the full plan in the JSON artifact, or run `reconciler plan`"
    return bounded(
        "\n".join(head + warnings + tables + notes) + "\n",
        footer=footer,
        elsewhere=where,
        limit=limit,
    )
