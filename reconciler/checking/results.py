"""What a probe of one destination found, step by step, and the inputs of a probe.

Data only: made by ``checking.probe`` and ``checking.invite``, read by
``checking.report`` and written as JSON by ``Result.document``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EXPIRY_WARNING_DAYS = 21
NO_ANSWER = "no answer to INVITE"  # a test call's reason when nothing at all came back
Severity = Literal["error", "warning", "note"]
State = Literal["up", "warning", "down"]


@dataclass(frozen=True)
class Partner:
    """The platform at a trunk's other end, as a probe needs it (``manifests.seam.End``)."""

    name: str  # its name under partners:
    platform: str  # livekit | kamailio | freeswitch | asterisk
    realm: str  # the trunk's domain, <account sid>.pstn.exotel.com: From's host on Exotel's calls
    exotel_addresses: tuple[str, ...] = ()  # signalling.addresses: all the partner should allow
    agent: str | None = None  # LiveKit: the agent its dispatch rule sends into the room

    @property
    def livekit(self) -> bool:
        return self.platform == "livekit"


@dataclass(frozen=True)
class Destination:
    """A destination URI of a trunk, parsed from its canonical form."""

    account: str
    trunk: str
    uri: str  # host:port;transport=tls
    priority: int
    weight: int
    share: float  # of the calls at its priority, by weight (0 to 1)
    partner: Partner | None = None  # the trunk's partner platform, when the manifests name one

    @property
    def host(self) -> str:
        return self.uri.partition(":")[0]

    @property
    def port(self) -> int:
        return int(self.uri.partition(":")[2].partition(";")[0])

    @property
    def transport(self) -> str:
        return self.uri.rpartition("transport=")[2]


@dataclass(frozen=True)
class Call:
    """What ``--invite`` sends: a DID of the trunk, and the headers its route would add."""

    did: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Settings:
    timeout: float = 5.0
    resolve: Mapping[tuple[str, int], str] = field(default_factory=dict)
    ca: str | None = None  # a PEM bundle to verify TLS against instead of the system's CAs
    user_agent: str = "reconciler"
    now: datetime | None = None  # for the certificate's days left (tests fix it)


@dataclass(frozen=True)
class Finding:
    severity: Severity
    message: str


@dataclass(frozen=True)
class Tls:
    version: str | None
    verified: bool
    not_after: str | None  # ISO date
    days_left: int | None
    problem: str | None = None


@dataclass(frozen=True)
class Answer:
    code: int
    reason: str
    software: str | None
    rtt_ms: float


@dataclass(frozen=True)
class Ringing:
    """The outcome of ``--invite``."""

    did: str
    code: int | None  # the final answer, or None
    reason: str
    codec: str | None
    provisional: int | None  # the last 1xx above 100 before the end
    ended: str  # "hung up" | "acknowledged" | "cancelled" | "no answer"
    provisionals: tuple[int, ...] = ()  # every 1xx, in order (LiveKit re-sends 180 while ringing)
    srtp: bool | None = None  # the 2xx's SDP answer is RTP/SAVP; None without an answer
    source: str | None = None  # the local address of the connection the INVITE went out on


@dataclass
class Result:
    destination: Destination
    addresses: tuple[str, ...] = ()
    resolved_by: str = "dns"  # dns | --resolve | literal
    address: str | None = None  # the address that accepted the connection
    connect_ms: float | None = None
    tls: Tls | None = None
    answer: Answer | None = None
    invite: Ringing | None = None
    findings: list[Finding] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def state(self) -> State:
        """down: calls would fail (any error); warning: they work, for now; up."""
        severities = {finding.severity for finding in self.findings}
        if "error" in severities:
            return "down"
        return "warning" if "warning" in severities else "up"

    @property
    def answers(self) -> bool:
        """A SIP server answered, over a connection Exotel would accept."""
        return self.answer is not None and not (self.tls is not None and not self.tls.verified)

    def error(self, message: str) -> None:
        self.findings.append(Finding("error", message))

    def warn(self, message: str) -> None:
        self.findings.append(Finding("warning", message))

    def note(self, message: str) -> None:
        self.findings.append(Finding("note", message))

    def document(self) -> dict[str, Any]:
        destination = self.destination
        tls = self.tls
        partner = destination.partner
        return {
            "uri": destination.uri,
            "partner": None
            if partner is None
            else {"name": partner.name, "platform": partner.platform},
            "priority": destination.priority,
            "weight": destination.weight,
            "share": round(destination.share, 4),
            "state": self.state,
            "answers": self.answers,
            "addresses": list(self.addresses),
            "resolved_by": self.resolved_by,
            "address": self.address,
            "connect_ms": _ms(self.connect_ms),
            "tls": None if tls is None else tls.__dict__.copy(),
            "sip": None
            if self.answer is None
            else {**self.answer.__dict__, "rtt_ms": _ms(self.answer.rtt_ms)},
            "invite": None if self.invite is None else self.invite.__dict__.copy(),
            "findings": [{"severity": f.severity, "message": f.message} for f in self.findings],
            "elapsed_ms": _ms(self.elapsed_ms),
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
