"""Per-account admission: Exotel's 200 requests per minute and 50 in flight.

Called by the sandbox's server for every authenticated API request. Pure bookkeeping
on a monotonic clock the caller passes in, so tests can drive it directly.

The window is strict and sliding: a request is refused when ``limit`` requests already
arrived in the last 60 seconds. Every authenticated API request is recorded, refused
ones included (docs/exotel-api.md section 6a: "every other API request does" count), so a
client that ignores ``Retry-After`` stays locked out; ``Retry-After`` is the whole
number of seconds until the window would take one more.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0  # "200 requests per minute per account" (docs/exotel-api.md section 1)
DEFAULT_PER_MINUTE = 200
DEFAULT_IN_FLIGHT = 50  # "50 concurrent connections is stated once"
IN_FLIGHT_RETRY_AFTER = 1


@dataclass(frozen=True)
class Refusal:
    retry_after: int
    reason: str


@dataclass
class _Account:
    arrivals: deque[float] = field(default_factory=deque)
    in_flight: int = 0


@dataclass(frozen=True)
class Ticket:
    state: _Account


class Admission:
    def __init__(
        self,
        *,
        per_minute: int = DEFAULT_PER_MINUTE,
        max_in_flight: int = DEFAULT_IN_FLIGHT,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.per_minute = per_minute
        self.max_in_flight = max_in_flight
        self.window = window  # shorter only in tests, so that recovery takes seconds
        self._accounts: dict[str, _Account] = {}

    def reset(self) -> None:
        self._accounts.clear()

    def admit(self, account: str, now: float) -> Refusal | Ticket:
        """Record an arrival: a refusal, or a ticket to hand back to :meth:`leave`.

        The ticket names the window it was counted in, so a request that finishes after
        a reset gives its slot back to the old, discarded window and not to the new one.
        """
        state = self._accounts.setdefault(account, _Account())
        if self.per_minute > 0:
            arrivals = state.arrivals
            while arrivals and arrivals[0] <= now - self.window:
                arrivals.popleft()
            arrivals.append(now)
            excess = len(arrivals) - self.per_minute
            if excess > 0:
                # Room for one more once the excess + 1 oldest arrivals have left the window.
                wait = arrivals[excess] + self.window - now
                return Refusal(
                    max(1, math.ceil(wait)),
                    f"More than {self.per_minute} requests in {self.window:g} seconds",
                )
        if state.in_flight >= self.max_in_flight:
            return Refusal(
                IN_FLIGHT_RETRY_AFTER,
                f"More than {self.max_in_flight} concurrent requests",
            )
        state.in_flight += 1
        return Ticket(state)

    def leave(self, ticket: Ticket) -> None:
        ticket.state.in_flight -= 1
