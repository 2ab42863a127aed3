"""The handoff's agents check: ask the customer's availability URL, within a deadline.

Called by ``routing.service`` for a handoff rule with ``agents.url``. Not Exotel: this
is the customer's own endpoint, which is why it is not in ``reconciler.exotel``.
"""

from __future__ import annotations

import asyncio

import httpx


async def ask(url: str, *, timeout: float) -> bool | None:
    """Ask an availability URL (routing's agents check): True on 2xx, False on another
    status, None when it fails or is too slow (the caller's fallback decides). The
    timeout bounds the whole exchange, not each read: a server trickling bytes is slow."""
    try:
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url)
    except (httpx.HTTPError, TimeoutError):
        return None
    return 200 <= response.status_code < 300
