"""The sandbox's request pipeline: one aiohttp handler for every request.

Called by the sandbox's server (``server.py``), which owns sockets, TLS and signals.
Checks run in the order docs/exotel-api.md section 6a gives for when several errors
apply: auth (401) -> rate limit (429) -> fault -> route or profile (404) -> content
type (415) -> body size and parse (413, 400/1007) -> the handler's own order (types,
trunk exists, field rules, duplicates).

Why aiohttp rather than an ASGI stack: the fault ``drop_connection`` must close the
connection without a byte of response, and ``timeout_after_commit`` must hold a
response until the client gives up. ASGI has no public way to drop a connection;
aiohttp hands the handler its ``asyncio.Transport`` (``request.transport``, public
API), and ``transport.abort()`` closes the socket there and then. The response object
returned afterwards is never written: aiohttp sees the closed transport and treats
the exchange as a client disconnect. With ``handler_cancellation`` on, a client that
goes away cancels its handler, which is how a held response learns the client gave up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from reconciler.sandbox import control, endpoints, persist
from reconciler.sandbox.config import Config
from reconciler.sandbox.envelope import (
    ApiError,
    Reply,
    bad_body,
    failure,
    internal_error,
    not_found,
    not_saved,
    render,
    too_large,
    too_many_requests,
    unauthorized,
    unsupported_media,
)
from reconciler.sandbox.faults import Faults, Rule
from reconciler.sandbox.limits import Admission, Refusal
from reconciler.sandbox.livekit import service as livekit
from reconciler.sandbox.request import ApiRequest
from reconciler.sandbox.store import Store
from reconciler.sandbox.voice import calls_api
from reconciler.sandbox.voice.dialer import Settings
from reconciler.sandbox.voice.endpoints import Voice

log = structlog.get_logger("sandbox")


@dataclass
class Exchange:
    """What one API request came to, for the log line and ``/_sandbox/stats``.

    ``outcome`` is ``answered`` (with ``status``), ``dropped`` (fault drop_connection),
    ``held`` (fault timeout_after_commit) or ``client_gone`` (the client hung up first).
    """

    method: str
    path: str
    route: str
    request_id: str
    account: str | None = None
    status: int | None = None
    outcome: str = "client_gone"

    @property
    def stats_key(self) -> str:
        return str(self.status) if self.outcome == "answered" else self.outcome


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()

    def count(self, exchange: Exchange) -> None:
        self.requests += 1
        self.by_route[exchange.route] += 1
        self.by_status[exchange.stats_key] += 1

    def report(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "by_status": dict(self.by_status),
        }


def _dialing(config: Config) -> Settings | None:
    """How the gateway reaches partners; None when the SIP side is off."""
    if not config.sip:
        return None
    return Settings(
        host=config.host,
        resolve={(host.lower(), port): address for host, port, address in config.resolve},
        connect_to={
            (host.lower(), port): (address, to) for host, port, address, to in config.connect_to
        },
        ca=str(config.sip_ca) if config.sip_ca else None,
        answer_timeout=config.answer_timeout,
        ring_timeout=config.ring_timeout,
    )


class Sandbox:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.credentials = {(a.api_key, a.api_token): a.sid for a in config.accounts}
        self.store = Store([a.sid for a in config.accounts], seed=config.seed)
        self.admission = Admission(
            per_minute=config.rate_limit,
            max_in_flight=config.max_in_flight,
            window=config.rate_window,
        )
        self.faults = Faults(seed=config.seed)
        self.stats = Stats()
        self.shutting_down = asyncio.Event()
        self.voice = Voice(self.store, _dialing(config), seed=config.seed)
        self.livekit = livekit.Service(dict(config.livekit))
        # With --state: the document last written, which memory always matches.
        self.saved: dict[str, Any] | None = None
        if config.state_file is not None:
            document = persist.load(config.state_file)
            if document is not None:
                try:
                    self.store.load(document)
                except ValueError as exc:
                    raise persist.unusable(config.state_file, str(exc)) from exc
            # Saved at once, in the same way as every change: proves the path can be
            # written, and keeps the restart count, so the next start draws new request ids.
            self.saved = self.store.dump()
            persist.first_save(config.state_file, self.saved)

    def reset(self) -> str | None:
        """As if just started: no data, empty rate-limit windows, no fault rules, no stats.

        None when done; else why the state file could not take it (then nothing is reset).
        """
        request_rng = self.store.request_rng
        self.store.reset([a.sid for a in self.config.accounts])
        problem = self.commit(force=True)
        if problem is not None:
            self.store.request_rng = request_rng
            return problem
        self.admission.reset()
        self.faults.replace([])
        self.stats = Stats()
        self.voice.reset()
        self.livekit.reset()
        return None

    def commit(self, *, force: bool = False, **context: str) -> str | None:
        """Save the data if it changed (``--state``); if it cannot be, undo the change.

        None when memory and the file agree on the new data; else why the save failed,
        after going back to the data last saved (logged once, with ``context``).
        """
        path = self.config.state_file
        if path is None or self.saved is None:
            return None
        document = self.store.dump()
        if document == self.saved and not force:
            return None
        try:
            persist.save(path, document)
        except persist.NotDurableError as exc:  # in place, so kept; only a power cut could lose it
            log.warning("state_not_synced", state_file=str(path), reason=persist.reason(path, exc))
        except OSError as exc:
            self.store.restore(self.saved)
            reason = persist.reason(path, exc)
            log.error(
                "state_not_saved", state_file=str(path), reason=reason, undone=True, **context
            )
            return f"cannot write state file {path}: {reason}"
        self.saved = document
        return None

    def _committed(self, exchange: Exchange) -> bool:
        """Whether a write's change, if any, is saved; if not, it has been undone."""
        problem = self.commit(
            method=exchange.method, path=exchange.path, request_id=exchange.request_id
        )
        return problem is None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            return await control.handle(self, request)
        if path.startswith(livekit.PREFIX):
            if request.method != "POST":  # Twirp takes POST only
                return web.json_response(
                    {"code": "bad_route", "msg": f"unsupported method {request.method}"},
                    status=404,
                )
            limit = self.config.max_body_bytes
            if request.content_length is not None and request.content_length > limit:
                return web.Response(status=413, text="request body too large")
            try:
                body = await request.read()  # whole (aiohttp refuses more than 1 MiB)
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413, text="request body too large")
            return await self._livekit(request, path, body)
        started = time.perf_counter()
        stats = self.stats  # a request that outlives a reset counts in the old stats
        found = endpoints.match(request.method, path)
        exchange = Exchange(
            method=request.method,
            path=path,
            route=found[0].key if found else f"{request.method} (no route)",
            request_id=self.store.new_request_id(),
        )
        try:
            return await self._api(request, exchange, found)
        finally:  # also when cancelled because the client went away
            stats.count(exchange)
            log.info(
                "request",
                method=exchange.method,
                path=exchange.path,
                status=exchange.status,
                outcome=exchange.outcome,
                account=exchange.account,
                request_id=exchange.request_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _api(
        self,
        request: web.BaseRequest,
        exchange: Exchange,
        found: tuple[endpoints.Route, dict[str, str]] | None,
    ) -> web.StreamResponse:
        account = self._authenticate(request, exchange.path)
        if account is None and exchange.path.startswith("/v1/"):
            status, body, kind = calls_api.failure(
                401,
                "Authentication failed: the API key and token do not match this account",
                as_json=exchange.path.endswith(".json"),
            )
            exchange.status, exchange.outcome = status, "answered"
            return web.Response(text=body, status=status, content_type=kind)
        if account is None:
            return await self._send(exchange, failure(unauthorized()))
        exchange.account = account
        ticket = self.admission.admit(account, time.monotonic())
        if isinstance(ticket, Refusal):
            error = too_many_requests(ticket.retry_after, ticket.reason)
            return await self._send(exchange, failure(error))
        try:
            if exchange.path.startswith("/v1/Accounts/"):
                return await self._calls_api(request, exchange, account)
            rule = self.faults.pick(exchange.method, exchange.path)
            if rule is not None and rule.fault != "timeout_after_commit":
                return await self._inject(request, exchange, rule)
            reply = await self._dispatch(request, exchange, account, found)
            if exchange.method != "GET" and not self._committed(exchange):
                return await self._send(exchange, failure(not_saved()))  # nothing held either
            if rule is not None:
                return await self._hold(request, exchange)
            return await self._send(exchange, reply)
        finally:
            self.admission.leave(ticket)

    async def _livekit(
        self, request: web.BaseRequest, path: str, body: bytes
    ) -> web.StreamResponse:
        """LiveKit's SIP API (``livekit.service``), with the injected faults of
        ``/_sandbox/faults`` as for Exotel's: an error or a dropped connection before the
        change, or the change made and its answer never sent."""
        exchange = Exchange(
            method="POST", path=path, route=f"POST {path}", request_id=self.store.new_request_id()
        )
        rule = self.faults.pick("POST", path)
        if rule is not None and rule.fault == "drop_connection":
            return self._drop(request, exchange, "dropped")
        if rule is not None and rule.fault in ("error_500", "rate_limit"):
            status = 500 if rule.fault == "error_500" else 429
            code = "internal" if status == 500 else "resource_exhausted"
            return web.json_response({"code": code, "msg": "injected fault"}, status=status)
        status, answer, kind = self.livekit.handle(path, request.headers, body)
        log.info("livekit", path=path, status=status)
        if rule is not None:  # timeout_after_commit
            return await self._hold(request, exchange)
        return web.Response(body=answer, status=status, content_type=kind)

    async def _calls_api(
        self, request: web.BaseRequest, exchange: Exchange, account: str
    ) -> web.Response:
        """Exotel's v1 Calls API (``voice.calls_api``): form data in, XML or JSON out."""
        form: dict[str, str] = {}
        if exchange.method == "POST":
            kind = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if kind not in ("", "application/x-www-form-urlencoded", "multipart/form-data"):
                status, body, shown = calls_api.failure(
                    415,
                    f"send form fields (application/x-www-form-urlencoded), as Exotel's v1 API "
                    f"takes them, not {kind}",
                    as_json=exchange.path.endswith(".json"),
                )
                exchange.status, exchange.outcome = status, "answered"
                return web.Response(text=body, status=status, content_type=shown)
            posted = await request.post()
            form = {key: str(value) for key, value in posted.items()}
        status, body, kind = await self.voice.api(account, exchange.method, exchange.path, form)
        exchange.status, exchange.outcome = status, "answered"
        return web.Response(text=body, status=status, content_type=kind)

    async def _inject(
        self, request: web.BaseRequest, exchange: Exchange, rule: Rule
    ) -> web.StreamResponse:
        """A fault that does nothing: an error answer, or a connection closed on the client."""
        if rule.fault == "error_500":
            return await self._send(exchange, failure(internal_error()))
        if rule.fault == "rate_limit":
            error = too_many_requests(rule.retry_after, "Too Many Requests (injected)")
            return await self._send(exchange, failure(error))
        return self._drop(request, exchange, "dropped")

    async def _dispatch(
        self,
        request: web.BaseRequest,
        exchange: Exchange,
        account: str,
        found: tuple[endpoints.Route, dict[str, str]] | None,
    ) -> Reply:
        if found is None or (self.config.profile == "minimal" and not found[0].minimal):
            return failure(not_found(f"No route for {exchange.method} {exchange.path}"))
        route, params = found
        try:
            body = await self._body(request) if exchange.method in {"POST", "PUT"} else None
            call = ApiRequest(
                store=self.store,
                account=self.store.account(account),
                path=exchange.path,
                params=params,
                query={key: request.query[key] for key in request.query},
                body=body,
            )
            reply = route.handler(call)
        except ApiError as error:
            return failure(error)
        except Exception:  # a sandbox bug: report it loudly, answer like a server would
            log.exception("handler_failed", method=exchange.method, path=exchange.path)
            return failure(internal_error())
        return reply

    async def _body(self, request: web.BaseRequest) -> Any:
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            raise unsupported_media(content_type)
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
        except web.RequestPayloadError as exc:  # such as a body that fails to decompress
            raise bad_body(f"Request body cannot be read: {exc}") from None
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError):
            raise bad_body("Request body is not valid JSON") from None

    def _authenticate(self, request: web.BaseRequest, path: str) -> str | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            key, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            return None
        account = self.credentials.get((key, token))
        named = endpoints.path_account(path)
        if account is None or (named is not None and named != account):
            return None
        return account

    async def _send(self, exchange: Exchange, reply: Reply) -> web.Response:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        exchange.status, exchange.outcome = reply.http_status, "answered"
        document = render(reply, request_id=exchange.request_id, method=exchange.method)
        return web.Response(
            body=json.dumps(document, separators=(",", ":")).encode(),
            status=reply.http_status,
            headers=reply.headers,
            content_type="application/json",
        )

    async def _hold(self, request: web.BaseRequest, exchange: Exchange) -> web.StreamResponse:
        """The change is made; hold the answer until the client gives up, then hang up."""
        exchange.outcome = "held"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutting_down.wait(), self.config.hold_seconds)
        return self._drop(request, exchange, "held")

    def _drop(self, request: web.BaseRequest, exchange: Exchange, outcome: str) -> web.Response:
        exchange.outcome = outcome
        if request.transport is not None:
            request.transport.abort()
        return web.Response()  # never written: the transport is closed
