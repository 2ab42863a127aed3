"""What ``reconciler check`` found, per trunk, as text, markdown or JSON.

Called by the CLI with the results of ``pipeline.checking``. Pure. Destinations are listed
in the order Exotel tries them (priority, then weight), each with its share of the calls
at its priority; a trunk's summary says how many answer, overall and per priority.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.checking.results import Destination, Partner, Result
from reconciler.manifests.problems import plural

MARK = {"up": "up  ", "warning": "WARN", "down": "DOWN"}
MARKER = "<!-- reconciler-check -->"  # finds the scheduled workflow's issue again


@dataclass(frozen=True)
class TrunkReport:
    account: str
    trunk: str
    sid: str | None
    results: tuple[Result, ...]  # in Exotel's order
    partner: Partner | None = None  # the platform at the trunk's other end, if named

    @property
    def ends(self) -> str:
        """The trunk's far end, for the headings: ``, partner blr_lk (livekit)``."""
        partner = self.partner
        return f", partner {partner.name} ({partner.platform})" if partner else ""

    @property
    def summary(self) -> str:
        if not self.results:
            return "no inbound destinations (nothing to check)"
        answering = sum(result.state != "down" for result in self.results)
        parts = [f"inbound: {answering} of {plural(len(self.results), 'destination')} answer"]
        priorities = sorted({result.destination.priority for result in self.results})
        if len(self.results) > 1:
            for priority in priorities:
                group = [r for r in self.results if r.destination.priority == priority]
                up = sum(result.state != "down" for result in group)
                parts.append(f"priority {priority}: {up} of {len(group)} up")
        return "; ".join(parts)

    @property
    def healthy(self) -> bool:
        return all(result.state == "up" for result in self.results)


def exotel_order(destinations: Sequence[Destination]) -> list[Destination]:
    """Lower priority first; within one, the heavier weight first (Exotel shares calls
    among equal priorities by weight, so this is the order of likelihood)."""
    return sorted(destinations, key=lambda d: (d.priority, -d.weight, d.uri))


def counts(reports: Sequence[TrunkReport]) -> dict[str, int]:
    results = [result for report in reports for result in report.results]
    return {
        "trunks": len(reports),
        "destinations": len(results),
        "up": sum(result.state == "up" for result in results),
        "warning": sum(result.state == "warning" for result in results),
        "down": sum(result.state == "down" for result in results),
    }


def healthy(reports: Sequence[TrunkReport]) -> bool:
    return all(report.healthy for report in reports)


def _total(reports: Sequence[TrunkReport]) -> str:
    tally = counts(reports)
    return (
        f"{plural(tally['trunks'], 'trunk')}, {plural(tally['destinations'], 'destination')}: "
        f"{tally['up']} up, {plural(tally['warning'], 'warning')}, {tally['down']} down"
    )


def _steps(result: Result) -> list[str]:
    """The steps that went well, one line each, for the text and markdown reports."""
    lines = []
    if result.addresses and result.resolved_by == "dns":
        lines.append(f"resolves to {', '.join(result.addresses)}")
    elif result.resolved_by == "--resolve":
        lines.append(f"resolved by --resolve to {result.addresses[0]}")
    if result.connect_ms is not None:
        lines.append(f"TCP to {result.address} in {result.connect_ms:.1f} ms")
    tls = result.tls
    if tls is not None and tls.verified:
        expiry = f", certificate valid until {tls.not_after} ({tls.days_left} days)"
        lines.append(f"{tls.version or 'TLS'}{expiry if tls.not_after else ''}")
    answer = result.answer
    if answer is not None:
        software = f" from {answer.software}" if answer.software else ""
        said = f"{answer.code} {answer.reason}".strip()
        lines.append(f"OPTIONS answered {said} in {answer.rtt_ms:.1f} ms{software}")
    ringing = result.invite
    if ringing is not None and ringing.code is not None and 200 <= ringing.code < 300:
        lines.append(
            f"INVITE to {ringing.did}: {ringing.code} {ringing.reason}, codec "
            f"{ringing.codec or 'none'}; hung up"
        )
    return lines


def _where(result: Result) -> str:
    d = result.destination
    return f"priority {d.priority}, weight {d.weight} ({d.share:.0%})"


def text(reports: Sequence[TrunkReport]) -> str:
    lines: list[str] = []
    for report in reports:
        sid = f", {report.sid}" if report.sid else ""
        lines.append(f"{report.trunk} ({report.account}{sid}{report.ends}): {report.summary}")
        for result in report.results:
            lines.append(f"  {MARK[result.state]}  {result.destination.uri}  {_where(result)}")
            lines += [f"          {step}" for step in _steps(result)]
            lines += [
                f"          {finding.severity}: {finding.message}" for finding in result.findings
            ]
    lines += ["", _total(reports)]
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    """Safe in a table cell of an issue: the far end's words (its Server header, its
    reason phrase) can make no markup, mention or link."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("@", "&#64;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def markdown(reports: Sequence[TrunkReport]) -> str:
    tally = counts(reports)
    verdict = "all destinations answer" if healthy(reports) else "problems found"
    lines = [MARKER, f"### reconciler check: {verdict}", "", _total(reports), ""]
    for report in reports:
        sid = f" `{report.sid}`" if report.sid else ""
        heading = f"#### {_cell(report.trunk)}{sid} ({_cell(report.account + report.ends)})"
        lines += [heading, "", report.summary]
        if report.results:
            lines += [
                "",
                "| | Destination | Priority, weight | What was found |",
                "|---|---|---|---|",
            ]
        for result in report.results:
            found = _steps(result) + [f"**{f.severity}**: {f.message}" for f in result.findings]
            cells = (MARK[result.state].strip(), f"`{result.destination.uri}`", _where(result))
            lines.append(
                "| "
                + " | ".join(_cell(c) for c in cells)
                + " | "
                + _cell("<br>".join(found))
                + " |"
            )
        lines.append("")
    if not tally["destinations"]:
        lines.append("No inbound destinations to check.")
    return "\n".join(lines).rstrip("\n") + "\n"


def document(reports: Sequence[TrunkReport], checked_at: datetime) -> dict[str, Any]:
    return {
        "format_version": 1,
        "checked_at": checked_at.isoformat(timespec="seconds"),
        "healthy": healthy(reports),
        "counts": counts(reports),
        "trunks": [
            {
                "account": report.account,
                "trunk": report.trunk,
                "sid": report.sid,
                "partner": None
                if report.partner is None
                else {"name": report.partner.name, "platform": report.partner.platform},
                "summary": report.summary,
                "healthy": report.healthy,
                "destinations": [result.document() for result in report.results],
            }
            for report in reports
        ],
    }


def json_text(reports: Sequence[TrunkReport], checked_at: datetime) -> str:
    return json.dumps(document(reports, checked_at), indent=2) + "\n"


def trace_text(trace: dict[str, Any]) -> str:
    """``reconciler trace`` for people: the call's way, one step a paragraph."""
    caller = f" from {trace['caller']}" if trace["caller"] else ""
    lines = [f"A call to {trace['did']}{caller} at {trace['at']} ({trace['weekday']}, IST)", ""]
    declared = trace["declared"]
    if declared:
        sid = declared["sid"] or "no SID yet: not applied"
        lines.append(
            f"number    declared on trunk {declared['trunk']} (account {declared['account']}, "
            f"{sid}), mode {declared['mode']}"
        )
    else:
        lines.append("number    not declared on any trunk in the manifests")
    live = trace["live"]
    if live is not None:
        if not live.get("read"):
            lines.append(f"live      {live.get('note', 'not read')}")
        elif live.get("holder"):
            name = f" ({live['trunk']})" if live.get("trunk") else ""
            mode = f", mode {live['mode']}" if live.get("mode") else ""
            lines.append(f"live      mapped on {live['holder']}{name}{mode}")
        else:
            lines.append("live      not mapped on any trunk")
    mode = trace["mode"]
    if mode == "pstn":
        lines.append("path      pstn: Exotel sends the call straight to the trunk")
    elif mode == "flow":
        lines.append("path      flow: the call runs through an Exotel flow (its Connect applet)")
    connect = trace["connect"]
    if connect is not None:
        lines.append(f"route     {connect['route']!s} (the Dynamic URL, /connect):")
        for tried in connect["tried"]:
            verdict = "matches" if tried["matched"] else "no: " + "; ".join(tried["why"])
            lines.append(f"            {tried['rule']} -> {tried['trunk']}: {verdict}")
        if connect["chosen"] == "default":
            lines.append(f"            default -> {connect['trunk']}")
        lines.append(f"          answers {connect['status']} {json.dumps(connect['answer'])}")
    handoff = trace["handoff"]
    if handoff is not None:
        lines.append(
            f"handoff   the Passthru (/handoff) answers {handoff['status'] or 'after asking'} "
            f"{json.dumps(handoff['answer'])} ({handoff['rule']})"
        )
    if trace["trunk"]:
        lines += ["", f"Destinations of {trace['trunk']}, in the order Exotel tries them:"]
        for index, item in enumerate(trace["destinations"], 1):
            lines.append(
                f"  {index}. {item['uri']}  priority {item['priority']}, weight "
                f"{item['weight']} ({item['share']:.0%})"
            )
            found = item["probe"]
            if found is not None:
                lines.append(f"     {found['state']}: " + _probe_line(found))
    for note in trace["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _probe_line(found: dict[str, Any]) -> str:
    sip = found["sip"]
    parts = []
    if sip is not None:
        parts.append(f"OPTIONS {sip['code']} {sip['reason']} in {sip['rtt_ms']} ms".rstrip())
    parts += [f"{f['severity']}: {f['message']}" for f in found["findings"]]
    return "; ".join(parts) or "answers"
