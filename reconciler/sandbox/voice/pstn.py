"""The sandbox's PSTN: the phones that outbound calls ring (docs/sandbox.md, "Calls").

Any Indian number in E.164 (``+91`` and ten digits) rings and answers. ``PUT
/_sandbox/pstn/{number}`` makes one busy, unanswered or unreachable; what each says on the
wire follows RFC 3398's mapping of ISDN causes to SIP (section 7.2.4.1): user busy (17)
486 Busy Here; no answer from user (19) 480 after ringing; subscriber absent (20) 480 at
once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INDIAN = re.compile(r"\+91[0-9]{10}")
BEHAVIOURS = ("answer", "busy", "no-answer", "unreachable")
DEFAULT_RING_S = 1.0  # rings this long before it answers (or, unanswered, gives up: 30 s)
NO_ANSWER_RING_S = 30.0


@dataclass(frozen=True)
class Phone:
    behaviour: str = "answer"
    ring_s: float = DEFAULT_RING_S
    hangup_after_s: float | None = None  # the called party hangs up after this long

    def document(self) -> dict[str, object]:
        return {
            "behaviour": self.behaviour,
            "ring_s": self.ring_s,
            "hangup_after_s": self.hangup_after_s,
        }


class PhoneError(ValueError):
    """A phone setting the sandbox refuses; the message says what would be right."""


def phone(body: object) -> Phone:
    """``{"behaviour", "ring_s", "hangup_after_s"}`` -> a phone, or PhoneError."""
    if not isinstance(body, dict):
        raise PhoneError('send a JSON object, like {"behaviour": "busy"}')
    unknown = set(body) - {"behaviour", "ring_s", "hangup_after_s"}
    if unknown:
        raise PhoneError(f"unknown field(s) {sorted(unknown)}: behaviour, ring_s, hangup_after_s")
    behaviour = body.get("behaviour", "answer")
    if behaviour not in BEHAVIOURS:
        raise PhoneError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, not {behaviour!r}")
    default = NO_ANSWER_RING_S if behaviour == "no-answer" else DEFAULT_RING_S
    ring = body.get("ring_s", default)
    hangup = body.get("hangup_after_s")
    for name, value in (("ring_s", ring), ("hangup_after_s", hangup)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600
        ):
            raise PhoneError(f"{name} must be a number of seconds from 0 to 3600")
    return Phone(str(behaviour), float(ring), None if hangup is None else float(hangup))


class Pstn:
    def __init__(self) -> None:
        self.phones: dict[str, Phone] = {}

    def get(self, number: str) -> Phone:
        return self.phones.get(number, Phone())

    def set(self, number: str, setting: Phone) -> None:
        if not INDIAN.fullmatch(number):
            raise PhoneError(f"{number!r} is not an Indian number in E.164 (+91 and ten digits)")
        self.phones[number] = setting

    def clear(self) -> None:
        self.phones.clear()
