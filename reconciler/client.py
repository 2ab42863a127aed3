"""The Exotel API client: the only module that speaks HTTP (and imports httpx).

Called by ``live`` (reads) and ``apply`` (writes). It takes an ``httpx.AsyncClient``
built by the caller (base URL, credentials, transport and timeouts are theirs, so
tests can hand it a loopback sandbox or a mock transport) and gives back plain data:

* envelopes decoded once: ``response.status``/``code`` decide, never the HTTP status
  alone; HTTP 200 with envelope 409 and a plain HTTP 409 are both :class:`Duplicate`;
  batch answers (207) come back per item; lists follow ``next_page_uri`` and cope with
  an empty list that has no ``metadata``;
* every failure mapped to the tree in ``errors`` at this boundary (``raise ... from``);
* retries: reads and idempotent writes (PUT, DELETE, the settings upsert) on 429, 5xx
  and connection failures, with exponential backoff and full jitter, honouring
  ``Retry-After`` and working without it; a create (POST) is retried only when it
  certainly did nothing (refused before sending, or a 429), never when it may have
  reached the server (a timeout, a dropped connection, a 5xx): the caller must check;
* a per-account :class:`Gate` shared by every request of that account: a sliding-window
  rate limit (Exotel allows 200 a minute) and a cap on requests in flight (50);
* one structlog event per request: method, path, status, Exotel ``request_id``,
  duration, attempt. Never credentials: they live in the httpx client's auth.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from reconciler import __version__
from reconciler.errors import (
    ApiError,
    AuthFailed,
    CallInfo,
    Duplicate,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)

log = structlog.get_logger("reconciler.client")

JSON = dict[str, Any]
DEFAULT_PER_MINUTE = 200  # Exotel's documented limit per account
DEFAULT_CONCURRENCY = 50  # "50 concurrent connections is stated once"
WINDOW_SECONDS = 60.0
# The server counts arrivals, we count departures: network jitter can bunch arrivals
# closer than departures, so our window is a little longer than the server's.
WINDOW_MARGIN_SECONDS = 1.0
PAGE_SIZE = 100  # the API's maximum: fewest pages per collection
LANE_SIZE = 10  # connections per pool lane (see LanedTransport)
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})  # safe to send again
Transport = httpx.AsyncBaseTransport  # for callers that inject one (tests), without httpx
REGION_URLS = {"mumbai": "https://api.in.exotel.com", "singapore": "https://api.exotel.com"}


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
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._sent: deque[float] = deque()
        self._turn = asyncio.Lock()  # first come, first served for the window
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, self.clock() + seconds)

    async def _wait_for_window(self) -> None:
        async with self._turn:
            while True:
                now = self.clock()
                if now < self._resume_at:
                    await self.sleep(self._resume_at - now)
                    continue
                if self.per_minute <= 0:
                    return
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return
                await self.sleep(self._sent[0] + self.window - now)

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


@dataclass(frozen=True)
class ItemResult:
    """One item of a batch answer (destination URIs, settings)."""

    data: JSON | None
    error: ApiError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_for(status: int, envelope: Mapping[str, Any] | None) -> type[ApiError]:
    code = envelope.get("code") if envelope else None
    error_data = (envelope or {}).get("error_data") or {}
    error_code = error_data.get("code") if isinstance(error_data, Mapping) else None
    if error_code == 1008 or code == 409 or status == 409:
        return Duplicate
    if status == 401 or error_code == 1010:
        return AuthFailed
    if status == 429 or code == 429:
        return RateLimited
    if status == 404 or error_code == 1000:
        return NotFound
    if status >= 500 or (isinstance(code, int) and code >= 500):
        return ServerError
    return Invalid


def _failure(envelope: Mapping[str, Any], status: int, info: CallInfo) -> ApiError:
    error_data = envelope.get("error_data") or {}
    if not isinstance(error_data, Mapping):
        error_data = {}
    message = str(error_data.get("description") or error_data.get("message") or "failed")
    code = error_data.get("code") if isinstance(error_data.get("code"), int) else None
    kind = _error_for(status, envelope)
    call = CallInfo(info.account, info.method, info.path, status, code, info.request_id)
    return kind(message, call)


class ExotelClient:
    """Exotel's vSIP API for one account. Paths are relative to ``/v2/accounts/{sid}``."""

    def __init__(
        self,
        *,
        account: str,
        sid: str,
        http: httpx.AsyncClient,
        gate: Gate | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.account = account
        self.sid = sid
        self.http = http
        self.gate = gate or Gate()
        self.retry = retry
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.root = f"/v2/accounts/{sid}"
        self.calls = 0  # requests sent, retries included: benchmarks compare it to the minimum

    # -- transport ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        body: Any,
        idempotent: bool,
    ) -> tuple[httpx.Response, float, int]:
        """The answer, when it started, and on which attempt; failures raised or retried."""
        writes = not idempotent
        for attempt in range(1, self.retry.attempts + 1):
            info = CallInfo(self.account, method, url.split("?", 1)[0])
            async with self.gate:
                started = time.perf_counter()  # the round trip, not the wait for the gate
                self.calls += 1
                try:
                    response = await self.http.request(method, url, params=params, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    failure: ApiError = TransportError(
                        f"cannot connect: {exc}", info, maybe_committed=False
                    )
                except httpx.HTTPError as exc:  # sent, but no answer came back
                    failure = TransportError(
                        f"no answer ({type(exc).__name__})", info, maybe_committed=True
                    )
                    if writes:
                        self._log(
                            info,
                            status=None,
                            request_id=None,
                            started=started,
                            attempt=attempt,
                            failure=failure,
                        )
                        raise failure from exc
                else:
                    retry_after = _retry_after(response)
                    request_id = None
                    if response.status_code == 429 or response.status_code >= 500:
                        request_id = _request_id(response)
                        self._log(
                            info,
                            status=response.status_code,
                            request_id=request_id,
                            started=started,
                            attempt=attempt,
                            failure=None,
                        )
                    if response.status_code == 429:
                        failure = RateLimited(
                            "rate limited", _with(info, 429, request_id), retry_after=retry_after
                        )
                        self.gate.pause(
                            retry_after if retry_after is not None else self.retry.base_delay
                        )
                    elif response.status_code >= 500 and not writes:
                        failure = ServerError(
                            "server error", _with(info, response.status_code, request_id)
                        )
                    else:
                        return response, started, attempt
            if attempt == self.retry.attempts:
                raise failure
            wait = self.retry.delay(attempt, getattr(failure, "retry_after", None), self.rng)
            log.info(
                "exotel.retry",
                account=self.account,
                method=method,
                path=info.path,
                error=type(failure).__name__,
                attempt=attempt,
                wait_s=round(wait, 2),
            )
            await self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(
        self,
        info: CallInfo,
        *,
        status: int | None,
        request_id: str | None,
        started: float,
        attempt: int,
        failure: ApiError | None,
    ) -> None:
        log.debug(
            "exotel.request",
            account=self.account,
            method=info.method,
            path=info.path,
            status=status,
            request_id=request_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            attempt=attempt,
            error=type(failure).__name__ if failure else None,
        )

    async def _envelope(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> tuple[Any, httpx.Response]:
        url = path if path.startswith("/v2/") else self.root + path
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        response, started, attempt = await self._send(
            method, url, params=params, body=body, idempotent=safe
        )
        info = CallInfo(self.account, method, url.split("?", 1)[0], response.status_code)
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code < 500 and response.status_code != 429:
            request_id = _request_id(response, document)
            self._log(
                info,
                status=response.status_code,
                request_id=request_id,
                started=started,
                attempt=attempt,
                failure=None,
            )
        if not isinstance(document, dict) or "response" not in document:
            if response.status_code >= 400:
                raise _error_for(response.status_code, None)(
                    f"HTTP {response.status_code} without Exotel's envelope", info
                )
            raise ServerError("the answer is not Exotel's envelope", info)
        info = _with(info, response.status_code, _request_id(response, document))
        envelope = document["response"]
        if isinstance(envelope, dict) and envelope.get("status") != "success":
            raise _failure(envelope, response.status_code, info)
        return document, response

    # -- shapes ------------------------------------------------------------------------

    async def single(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> JSON:
        document, response = await self._envelope(method, path, params=params, body=body)
        envelope = document["response"]
        if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
            info = CallInfo(self.account, method, path, response.status_code)
            raise ServerError("expected one object in the answer", info)
        data: JSON = envelope["data"]
        return data

    async def listing(self, path: str, *, params: Mapping[str, Any] | None = None) -> list[JSON]:
        """Every item of a collection, following ``next_page_uri``."""
        items: list[JSON] = []
        url: str | None = path
        query: Mapping[str, Any] | None = {**(params or {}), "page_size": PAGE_SIZE}
        while url is not None:
            document, response = await self._envelope("GET", url, params=query)
            envelope = document["response"]
            if not isinstance(envelope, list):
                info = CallInfo(self.account, "GET", url, response.status_code)
                raise ServerError("expected a list in the answer", info)
            for item in envelope:
                if not isinstance(item, dict) or item.get("status") != "success":
                    info = CallInfo(self.account, "GET", url, response.status_code)
                    raise ServerError("a list item is not a success envelope", info)
                items.append(item["data"])
            metadata = document.get("metadata") or {}
            next_uri = metadata.get("next_page_uri") if isinstance(metadata, dict) else None
            url, query = (next_uri, None) if next_uri and next_uri.startswith("/") else (None, None)
        return items

    async def batch(self, path: str, body: JSON, *, idempotent: bool = False) -> list[ItemResult]:
        """A batch write (destination URIs, settings): one result per item, in order."""
        document, response = await self._envelope("POST", path, body=body, idempotent=idempotent)
        envelope = document["response"]
        if not isinstance(envelope, list):
            info = CallInfo(self.account, "POST", path, response.status_code)
            raise ServerError("expected per-item results in the answer", info)
        request_id = _request_id(response, document)
        info = CallInfo(
            self.account, "POST", self.root + path, response.status_code, None, request_id
        )
        results = []
        for item in envelope:
            if isinstance(item, dict) and item.get("status") == "success":
                results.append(ItemResult(item.get("data"), None))
            else:
                failed = item if isinstance(item, dict) else {}
                results.append(ItemResult(None, _failure(failed, response.status_code, info)))
        return results

    # -- the API ---------------------------------------------------------------------------

    async def list_trunks(self) -> list[JSON]:
        return await self.listing("/trunks")

    async def create_trunk(self, name: str, nso_code: str, domain_name: str) -> JSON:
        body = {"trunk_name": name, "nso_code": nso_code, "domain_name": domain_name}
        return await self.single("POST", "/trunks", body=body)

    async def update_trunk(self, trunk_sid: str, **fields: str) -> JSON:
        return await self.single("PUT", f"/trunks/{trunk_sid}", body=fields)

    async def delete_trunk(self, trunk_sid: str) -> JSON:
        return await self.single("DELETE", "/trunks", params={"trunk_sid": trunk_sid})

    async def children(self, trunk_sid: str, collection: str) -> list[JSON]:
        return await self.listing(f"/trunks/{trunk_sid}/{collection}")

    async def add_child(self, trunk_sid: str, collection: str, body: JSON) -> JSON:
        return await self.single("POST", f"/trunks/{trunk_sid}/{collection}", body=body)

    async def update_child(
        self, trunk_sid: str, collection: str, child_id: str, body: JSON
    ) -> JSON:
        return await self.single("PUT", f"/trunks/{trunk_sid}/{collection}/{child_id}", body=body)

    async def delete_child(
        self, trunk_sid: str, collection: str, child_id: str, *, key: str = "id"
    ) -> JSON:
        return await self.single(
            "DELETE", f"/trunks/{trunk_sid}/{collection}", params={key: child_id}
        )

    async def add_batch(
        self, trunk_sid: str, collection: str, body: JSON, *, idempotent: bool = False
    ) -> list[ItemResult]:
        return await self.batch(f"/trunks/{trunk_sid}/{collection}", body, idempotent=idempotent)

    async def trunk_map(self, exophone: str) -> JSON | None:
        """Which trunk holds a DID, or None when it is mapped nowhere."""
        try:
            return await self.single("GET", "/trunk-maps", params={"exophone": exophone})
        except NotFound:
            return None


def _with(info: CallInfo, status: int | None, request_id: str | None) -> CallInfo:
    return CallInfo(info.account, info.method, info.path, status, info.code, request_id)


_UNREAD = object()


def _request_id(response: httpx.Response, document: Any = _UNREAD) -> str | None:
    if document is _UNREAD:
        try:
            document = response.json()
        except ValueError:
            return None
    value = document.get("request_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


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


def base_url(region: str, configured: str | None, environ: Mapping[str, str]) -> str:
    """EXOTEL_BASE_URL beats the account's ``base_url``, which beats the region's host."""
    return (environ.get("EXOTEL_BASE_URL") or configured or REGION_URLS[region]).rstrip("/")


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


async def probe(url: str, *, timeout: float) -> bool | None:
    """Ask an availability URL (routing's agents check): True on 2xx, False on another
    status, None when it fails or is too slow (the caller's fallback decides). The
    timeout bounds the whole exchange, not each read: a server trickling bytes is slow."""
    try:
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url)
    except (httpx.HTTPError, TimeoutError):
        return None
    return 200 <= response.status_code < 300
