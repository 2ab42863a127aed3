"""Sending requests to Exotel for one account: the gate, retries, envelopes, pages, logs.

The base of ``ExotelClient``. It takes an ``httpx.AsyncClient`` built by the caller
(base URL, credentials, transport and timeouts are theirs) and gives back plain data:

* envelopes decoded once (``envelope``); every failure mapped to the tree in
  ``reconciler.errors`` at this boundary (``raise ... from``);
* retries: reads and idempotent writes (PUT, DELETE, the settings upsert) on 429, 5xx
  and connection failures, with backoff (``gate.RetryPolicy``), honouring
  ``Retry-After`` and working without it; a create (POST) is retried only when it
  certainly did nothing (refused before sending, or a 429), never when it may have
  reached the server (a timeout, a dropped connection, a 5xx): the caller must check;
* every request through the account's ``Gate``;
* lists follow ``next_page_uri`` and cope with an empty list that has no ``metadata``;
* one structlog event per request: method, path, status, Exotel ``request_id``,
  duration, attempt. Never credentials: they live in the httpx client's auth.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import structlog

from reconciler.errors import ApiError, CallInfo, RateLimited, ServerError, TransportError
from reconciler.exotel.envelope import (
    JSON,
    ItemResult,
    envelope_error,
    error_for,
    request_id_of,
    retry_after_of,
    with_status,
)
from reconciler.exotel.gate import Gate, RetryPolicy

log = structlog.get_logger("reconciler.exotel")

PAGE_SIZE = 100  # the API's maximum: fewest pages per collection
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})  # safe to send again
CONNECT_ATTEMPTS = 2  # a refused connection is tried once more, then reported at once


class Session:
    """Requests to Exotel's API for one account, decoded. Paths are relative to
    ``/v2/accounts/{sid}``; ``ExotelClient`` adds the operations on top."""

    def __init__(
        self,
        *,
        account: str,
        sid: str,
        http: httpx.AsyncClient,
        gate: Gate | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.account = account
        self.sid = sid
        self.http = http
        self.gate = gate or Gate()
        self.retry = retry or RetryPolicy()
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
                    host = self.http.base_url.copy_with(raw_path=b"/")
                    failure: ApiError = TransportError(
                        f"cannot connect to {str(host).rstrip('/')}: {exc or type(exc).__name__}",
                        info,
                        maybe_committed=False,
                    )
                    if isinstance(exc, httpx.ConnectError) and attempt >= CONNECT_ATTEMPTS:
                        # Refused, or no such host: waiting longer will not change it.
                        raise failure from exc
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
                    retry_after = retry_after_of(response)
                    request_id = None
                    if response.status_code == 429 or response.status_code >= 500:
                        request_id = request_id_of(response)
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
                            "rate limited",
                            with_status(info, 429, request_id),
                            retry_after=retry_after,
                        )
                        self.gate.pause(
                            retry_after if retry_after is not None else self.retry.base_delay
                        )
                    elif response.status_code >= 500 and not writes:
                        failure = ServerError(
                            "server error", with_status(info, response.status_code, request_id)
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
            request_id = request_id_of(response, document)
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
                raise error_for(response.status_code, None)(
                    f"HTTP {response.status_code} without Exotel's envelope", info
                )
            raise ServerError("the answer is not Exotel's envelope", info)
        info = with_status(info, response.status_code, request_id_of(response, document))
        envelope = document["response"]
        if isinstance(envelope, dict) and envelope.get("status") != "success":
            raise envelope_error(envelope, response.status_code, info)
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
            url, query = self._next_page(next_uri), None
        return items

    def _next_page(self, uri: object) -> str | None:
        """The path of the next page: a root-relative ``next_page_uri`` as the docs show
        it, or an absolute one on the same host. Never another host: the request would
        carry the account's credentials there."""
        if not isinstance(uri, str) or not uri:
            return None
        if uri.startswith("/"):
            return uri
        found, base = httpx.URL(uri), self.http.base_url
        if (found.scheme, found.host, found.port) != (base.scheme, base.host, base.port):
            log.warning("exotel.next_page_elsewhere", account=self.account, host=found.host)
            return None
        return found.raw_path.decode("ascii")

    async def batch(self, path: str, body: JSON, *, idempotent: bool = False) -> list[ItemResult]:
        """A batch write (destination URIs, settings): one result per item, in order."""
        document, response = await self._envelope("POST", path, body=body, idempotent=idempotent)
        envelope = document["response"]
        if not isinstance(envelope, list):
            info = CallInfo(self.account, "POST", path, response.status_code)
            raise ServerError("expected per-item results in the answer", info)
        request_id = request_id_of(response, document)
        info = CallInfo(
            self.account, "POST", self.root + path, response.status_code, None, request_id
        )
        results = []
        for item in envelope:
            if isinstance(item, dict) and item.get("status") == "success":
                results.append(ItemResult(item.get("data"), None))
            else:
                failed = item if isinstance(item, dict) else {}
                results.append(ItemResult(None, envelope_error(failed, response.status_code, info)))
        return results
