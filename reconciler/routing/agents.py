"""The handoff's agents check: ask the customer's availability URL, within a deadline.

Called by ``routing.service`` for a handoff rule with ``agents.url``. Not Exotel: this
is the customer's own endpoint, which is why it is not in ``reconciler.exotel``.

One ``Agents`` (one ``httpx.AsyncClient``) per process, opened when the service starts
and closed when it stops: a client costs about 38 ms of CPU to build (it loads the CA
bundle into a new SSL context), which on the one event loop delayed every other caller,
while a shared one costs a fraction of a millisecond per check and keeps connections to
the agents URL alive. Its pool is bounded: past ``MAX_CONNECTIONS`` checks in flight, a
check waits for a connection within its own deadline, then the fallback answers.
"""

from __future__ import annotations

import asyncio

import httpx

MAX_CONNECTIONS = 64  # to agents URLs at once, per process (each holds a file descriptor)
MAX_KEEPALIVE = 16  # idle connections kept for the next check
KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept


class Agents:
    """The process's client for agents URLs: ``open`` once, ``ask`` many times, ``close``."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(MAX_KEEPALIVE, max_connections),
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
        self._client: httpx.AsyncClient | None = None

    def open(self) -> None:
        if self._client is None:
            # Each check sets its own deadline (asyncio.timeout below); the client's
            # timeouts only stop a check that nobody bounds.
            self._client = httpx.AsyncClient(limits=self.limits, timeout=10.0)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def ask(self, url: str, *, timeout: float) -> bool | None:
        """True on 2xx, False on another status, None when the check failed or was too
        slow (the caller's fallback decides). The timeout bounds the whole exchange,
        waiting for a pooled connection included, not each read: a server trickling
        bytes is slow."""
        if self._client is None:
            raise RuntimeError("the agents client is not open (the service has not started)")
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.get(url)
        except (httpx.HTTPError, TimeoutError):
            return None
        return 200 <= response.status_code < 300


async def ask(url: str, *, timeout: float) -> bool | None:
    """One check with a client of its own (a script or a test; the service shares one)."""
    agents = Agents(max_connections=1)
    agents.open()
    try:
        return await agents.ask(url, timeout=timeout)
    finally:
        await agents.close()
