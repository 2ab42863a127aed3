"""What a call did: its legs, every SIP message of them, its media, as data.

Written by ``inbound`` and ``dialer`` while a call runs; read by ``GET
/_sandbox/calls/{call_sid}``, which is what ``reconciler call`` draws as a ladder.
Times are milliseconds since the call started. Status values are the Calls API's
(docs/exotel-api.md, "Calls"): ``in-progress`` while it runs, then ``completed``,
``busy``, ``no-answer`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_CALLS = 1000  # records kept; the oldest finished ones go first


@dataclass
class Leg:
    """One INVITE to one destination."""

    destination: str
    transport: str
    address: str | None = None
    sid: str = field(default_factory=lambda: secrets.token_hex(16))
    responses: list[dict[str, Any]] = field(default_factory=list)
    # answered | busy | declined | no-answer | rejected | server-error | timeout |
    # refused | unreachable | tls-failed
    outcome: str = ""
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the X- headers sent
    answered_ms: int | None = None
    ended_ms: int | None = None
    ended_by: str | None = None  # sandbox | partner
    media: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        return {
            "leg_sid": self.sid,
            "destination": self.destination,
            "transport": self.transport,
            "address": self.address,
            "headers": dict(self.headers),
            "responses": list(self.responses),
            "outcome": self.outcome,
            "detail": self.detail,
            "answered_ms": self.answered_ms,
            "ended_ms": self.ended_ms,
            "ended_by": self.ended_by,
            "duration_s": (
                round((self.ended_ms - self.answered_ms) / 1000, 3)
                if self.answered_ms is not None and self.ended_ms is not None
                else None
            ),
            "media": self.media,
        }


@dataclass
class Call:
    """One call through the sandbox."""

    account: str
    direction: str  # inbound | outbound | outbound-api
    from_: str
    to: str
    sid: str = field(default_factory=lambda: secrets.token_hex(16))
    status: str = "in-progress"
    trunk_sid: str | None = None
    trunk_name: str | None = None
    mode: str | None = None
    recording: str | None = None  # the Connect applet asked to record: single | dual
    reason: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    legs: list[Leg] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # Dynamic URL, Passthru
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _start: float = field(default_factory=time.monotonic, repr=False)

    def now_ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000)

    def event(self, source: str, target: str, what: str) -> None:
        """One arrow of the ladder."""
        self.events.append({"at_ms": self.now_ms(), "from": source, "to": target, "what": what})

    def end(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason
        self.ended_at = datetime.now(UTC)
        self.done.set()

    def updated_at(self) -> datetime:
        return self.ended_at or datetime.now(UTC)

    def document(self) -> dict[str, Any]:
        return {
            "call_sid": self.sid,
            "account": self.account,
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "status": self.status,
            "reason": self.reason,
            "trunk_sid": self.trunk_sid,
            "trunk_name": self.trunk_name,
            "mode": self.mode,
            "recording": self.recording,
            "created": self.created_at.isoformat(timespec="seconds"),
            "ended": self.ended_at.isoformat(timespec="seconds") if self.ended_at else None,
            "legs": [leg.document() for leg in self.legs],
            "exchanges": list(self.exchanges),
            "events": list(self.events),
        }


class Calls:
    """Every call's record, by CallSid; the oldest finished ones are dropped past
    ``MAX_CALLS``."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, call: Call) -> None:
        self.calls[call.sid] = call
        if len(self.calls) > MAX_CALLS:
            for sid, old in list(self.calls.items()):
                if old.done.is_set():
                    del self.calls[sid]
                    break

    def start(self, call: Call, run: Any) -> None:
        """Run a call in the background; its task is kept until it ends."""
        self.add(call)
        task = asyncio.get_running_loop().create_task(run)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def clear(self) -> None:
        self.calls.clear()
