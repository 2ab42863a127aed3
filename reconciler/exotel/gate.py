"""Admission and retries for one account: Exotel's rate limit, the in-flight cap, backoff.

Used by ``session`` for every request. The gate is shared by all requests of one
account (Exotel counts per account), so concurrent reads and writes never exceed it
together. Numbers and their sources:

* 200 requests a minute per account, 50 concurrent connections (docs/exotel-api.md);
* our window is a second longer than the server's: it counts arrivals, we count
  departures, and network jitter can bunch arrivals closer than departures;
* backoff with full jitter (AWS's "Exponential Backoff And Jitter"), or the server's
  ``Retry-After`` when it gives one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

DEFAULT_PER_MINUTE = 200  # Exotel's documented limit per account
DEFAULT_CONCURRENCY = 50  # "50 concurrent connections is stated once"
WINDOW_SECONDS = 60.0
WINDOW_MARGIN_SECONDS = 1.0
REPORT_EVERY_SECONDS = 10.0  # a wait this long (in all, since the last word) is said

log = structlog.get_logger("reconciler.exotel")


class Gate:
    """Admission for one account: at most ``per_minute`` requests in any window, at most
    ``concurrency`` in flight, and a shared pause after the server says 429."""

    def __init__(
        self,
        *,
        per_minute: int = DEFAULT_PER_MINUTE,
        concurrency: int = DEFAULT_CONCURRENCY,
        window: float = WINDOW_SECONDS + WINDOW_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        account: str = "",
    ) -> None:
        self.per_minute = per_minute
        self.account = account
        self.waited = 0.0  # seconds spent waiting for the window, in all
        self._said = 0.0  # ...of which already reported
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._sent: deque[float] = deque()
        self._turn = asyncio.Lock()  # first come, first served for the window
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Exotel answered 429: every request of the account waits, and people are told."""
        resume = self.clock() + seconds
        if resume > self._resume_at + 1:
            log.warning(
                "exotel.rate_limited",
                account=self.account,
                wait_s=round(seconds),
                message=f"rate limited by Exotel: waiting {seconds:.0f} s",
            )
        self._resume_at = max(self._resume_at, resume)

    async def _wait(self, seconds: float, *, announce: bool = True) -> None:
        if announce and seconds >= REPORT_EVERY_SECONDS:  # a long wait is said first
            log.warning(
                "exotel.rate_limit_wait",
                account=self.account,
                wait_s=round(seconds),
                per_minute=self.per_minute,
                message=f"at the account's rate limit ({self.per_minute} a minute): "
                f"waiting {seconds:.0f} s",
            )
            self._said = self.waited + seconds
        await self.sleep(seconds)
        self.waited += seconds
        if not announce:
            self._said = self.waited
        elif self.waited - self._said >= REPORT_EVERY_SECONDS:  # short waits, adding up
            self._said = self.waited
            log.warning(
                "exotel.rate_limit_wait",
                account=self.account,
                waited_s=round(self.waited),
                per_minute=self.per_minute,
                message=f"at the account's rate limit ({self.per_minute} a minute): "
                f"waited {self.waited:.0f} s so far",
            )

    async def _wait_for_window(self) -> None:
        async with self._turn:
            while True:
                now = self.clock()
                if now < self._resume_at:  # after a 429, which ``pause`` announced
                    await self._wait(self._resume_at - now, announce=False)
                    continue
                if self.per_minute <= 0:
                    return
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return
                await self._wait(self._sent[0] + self.window - now)

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            await self._wait_for_window()
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter (AWS's "Exponential Backoff And Jitter"), or what the server asked."""
        if retry_after is not None:
            return retry_after + rng.uniform(0, self.base_delay)
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
