"""The HTTP side of one account's connection: where Exotel is, and pooled connections.

Used by the pipeline to build the ``httpx.AsyncClient`` a session sends through (the
caller owns it, so tests can hand in a loopback sandbox or a mock transport).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from reconciler import __version__
from reconciler.errors import ConfigError
from reconciler.exotel.gate import DEFAULT_CONCURRENCY

LANE_SIZE = 10  # connections per pool lane (see LanedTransport)
Transport = httpx.AsyncBaseTransport  # for callers that inject one (tests), without httpx
# Exotel's two API hosts (docs/exotel-api.md, conventions).
REGION_URLS = {"mumbai": "https://api.in.exotel.com", "singapore": "https://api.exotel.com"}


class LanedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools instead of one large one.

    httpcore's pool scans every connection (a ``poll`` on each socket) whenever a request
    is queued or finishes, so its cost per request grows with the pool: at 50 connections
    it was the client's largest CPU cost, and made a 200 ms-latency plan CPU-bound.
    Lanes of ``LANE_SIZE`` connections keep each scan short; a request goes to the lane
    with the fewest requests in flight."""

    def __init__(self, *, connections: int, **options: Any) -> None:
        lanes = max(1, -(-connections // LANE_SIZE))
        size = -(-connections // lanes)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        # One TLS context for every lane: loading the CA bundle costs ~40 ms each time.
        options.setdefault("verify", httpx.create_ssl_context(trust_env=True))
        self._lanes = [httpx.AsyncHTTPTransport(limits=limits, **options) for _ in range(lanes)]
        self._busy = [0] * lanes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = min(range(len(self._lanes)), key=self._busy.__getitem__)
        self._busy[lane] += 1
        try:
            return await self._lanes[lane].handle_async_request(request)
        finally:
            self._busy[lane] -= 1

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()


OFFICIAL_HOSTS = frozenset({"api.in.exotel.com", "api.exotel.com"})


def foreign_host(
    url: str, allowed: str = "", official: Callable[[str], bool] = OFFICIAL_HOSTS.__contains__
) -> str | None:
    """The host of ``url`` when credentials must not be sent there: not an ``official``
    host (Exotel's API hosts; a partner passes its own test) over HTTPS, and not in
    ``allowed`` (comma-separated ``host`` or ``host:port``, as a workflow's own
    environment may list a sandbox). None when safe."""
    found = httpx.URL(url)
    host = found.host
    if found.scheme == "https" and official(host) and found.port in (None, 443):
        return None
    listed = set(allowed_hosts(allowed))
    with_port = f"{host}:{found.port}" if found.port is not None else host
    if host in listed or with_port in listed:
        return None
    return f"{found.scheme}://{with_port}"


def allowed_hosts(text: str) -> list[str]:
    """``RECONCILER_ALLOWED_HOSTS``: comma-separated ``host`` or ``host:port``. A malformed
    entry is an error of its own, never the same refusal as a host not listed."""
    entries = [entry.strip().lower() for entry in text.split(",") if entry.strip()]
    for entry in entries:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if "/" in entry or "@" in entry or not host or (port and not port.isdigit()):
            bare = entry.split("://", 1)[-1].split("/", 1)[0]
            raise ConfigError(
                f"RECONCILER_ALLOWED_HOSTS entry {entry!r} is malformed: list host or "
                f"host:port, comma-separated, with no scheme or path (like {bare})"
            )
    return entries


def base_url(region: str, configured: str | None, environ: Mapping[str, str]) -> str:
    """EXOTEL_BASE_URL beats the account's ``base_url``, which beats the region's host."""
    url = environ.get("EXOTEL_BASE_URL") or configured or REGION_URLS[region]
    if not url.startswith(("http://", "https://")):
        where = "EXOTEL_BASE_URL" if environ.get("EXOTEL_BASE_URL") else "base_url"
        raise ConfigError(
            f"{where} {url!r} is not a URL: write it with its scheme, like "
            "http://127.0.0.1:8765 or https://api.in.exotel.com"
        )
    return url.rstrip("/")


def http_client(
    url: str,
    api_key: str,
    api_token: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = 30.0,
    transport: Transport | None = None,
) -> httpx.AsyncClient:
    """The httpx client for one account: basic auth, pooled connections, timeouts."""
    return httpx.AsyncClient(
        base_url=url,
        auth=(api_key, api_token),
        timeout=httpx.Timeout(timeout, connect=10.0, pool=None),
        headers={"User-Agent": f"exotel-reconciler/{__version__}"},
        transport=transport or LanedTransport(connections=concurrency),
    )
