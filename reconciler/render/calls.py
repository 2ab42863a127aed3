"""A call's record (``GET /_sandbox/calls/{sid}``) as people read it: the ladder of what
went where, each leg's outcome and media, and each webhook asked.

Pure. ``text`` for a terminal, ``markdown`` with the ladder as a Mermaid sequence diagram
(for a pull request or a wiki page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]


def headline(record: Record) -> str:
    trunk = f" via trunk {record['trunk_name']}" if record.get("trunk_name") else ""
    return (
        f"call {record.get('call_sid')} {record.get('direction')} {record.get('from')} -> "
        f"{record.get('to')}{trunk}: {record.get('status')}"
        + (f" ({record['reason']})" if record.get("reason") else "")
    )


def _leg(leg: Mapping[str, Any]) -> str:
    codes = " ".join(str(r["code"]) for r in leg.get("responses", []))
    parts = [f"{leg['destination']}: {leg.get('outcome') or '?'}"]
    if codes:
        parts.append(f"[{codes}]")
    if leg.get("detail"):
        parts.append(f"- {leg['detail']}")
    if leg.get("duration_s") is not None:
        who = {
            "sandbox": "the caller hung up",
            "partner": "the partner hung up",
            "pstn": "the called phone hung up",
        }.get(str(leg.get("ended_by")), f"ended by {leg.get('ended_by')}")
        parts.append(f"- {leg['duration_s']} s, {who}")
    media = leg.get("media")
    if media:
        secure = "SRTP " if media.get("srtp") else ""
        parts.append(
            f"- {secure}{media['codec']}: {media['packets_sent']} packets sent, "
            f"{media['packets_received']} received ({media['own_tone_back']} of them its own "
            f"tone back), {media['lost']} lost, jitter {media['jitter_ms']} ms"
        )
    return " ".join(parts)


def _exchange(asked: Mapping[str, Any]) -> str:
    said = asked.get("status") or asked.get("error")
    problems = "; ".join(asked.get("problems") or [])
    tail = f" - {problems}" if problems else ""
    return f"{asked['kind']} {asked['url']}: {said} in {asked.get('took_ms')} ms{tail}"


def text(record: Record) -> str:
    events: Sequence[Mapping[str, Any]] = record.get("events", [])
    lines = [headline(record), ""]

    def between(event: Mapping[str, Any]) -> str:
        same = event["from"] == event["to"]
        return event["from"] if same else f"{event['from']} -> {event['to']}"

    width = max((len(between(e)) for e in events), default=0)
    for event in events:
        arrow = between(event).ljust(width)
        lines.append(f"{event['at_ms']:>7} ms  {arrow}  {event['what']}")
    if record.get("legs"):
        lines += ["", "legs:"]
        lines += [f"  {_leg(leg)}" for leg in record["legs"]]
    if record.get("exchanges"):
        lines += ["", "webhooks:"]
        lines += [f"  {_exchange(asked)}" for asked in record["exchanges"]]
    return "\n".join(lines) + "\n"


def _mermaid_text(value: str) -> str:
    """Message text Mermaid reads literally: ``;`` and ``#`` as entity codes."""
    return value.replace("#", "#35;").replace(";", "#59;").replace("\n", " ")


def ladder(record: Record) -> str:
    """The ladder as a Mermaid sequence diagram."""
    events: Sequence[Mapping[str, Any]] = record.get("events", [])
    names: dict[str, str] = {}
    for event in events:
        for who in (event["from"], event["to"]):
            names.setdefault(who, f"P{len(names)}")
    lines = ["sequenceDiagram"]
    lines += [f"    participant {alias} as {_mermaid_text(who)}" for who, alias in names.items()]
    for event in events:
        source, target = names[event["from"]], names[event["to"]]
        said = _mermaid_text(f"{event['what']} ({event['at_ms']} ms)")
        if source == target:
            lines.append(f"    Note over {source}: {said}")
        else:
            lines.append(f"    {source}->>{target}: {said}")
    return "\n".join(lines) + "\n"


def markdown(record: Record) -> str:
    lines = [f"**{headline(record)}**", "", "```mermaid", ladder(record).rstrip(), "```"]
    if record.get("legs"):
        lines += ["", "| leg | what happened |", "|---|---|"]
        lines += [
            f"| {index} | {_leg(leg).replace('|', '/')} |"
            for index, leg in enumerate(record["legs"], 1)
        ]
    if record.get("exchanges"):
        lines += [""]
        lines += [f"- {_exchange(asked)}" for asked in record["exchanges"]]
    return "\n".join(lines) + "\n"
