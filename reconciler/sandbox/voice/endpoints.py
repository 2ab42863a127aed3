"""The control endpoints of the sandbox's voice side (docs/sandbox.md, "Calls").

Called by the sandbox's control dispatch for paths under ``/_sandbox/calls`` and
``/_sandbox/pstn``:

    POST /_sandbox/calls             a PSTN call to a DID: {"to", "from", "account",
                                     "hangup_after_s", "at", "play"} -> 201 {"call_sid",
                                     "uri"} ("at": the call's start as its webhooks are
                                     told; "play": a WAV file the caller plays)
    PUT  /_sandbox/flows/{did}       the DID's flow: {"account", "connect": {"url",
                                     "fallback_url", "timeout_s"} or {"trunk"},
                                     "passthru": {"url", "then": {...}, "timeout_s"}}
    DELETE /_sandbox/flows/{did}     forget the DID's flow (?account=SID with several)
    GET  /_sandbox/flows             the flows set so far
    PUT  /_sandbox/apps/{app_id}     the flow of an app id (same body as a DID's), which the
                                     Calls API's Url names; GET /_sandbox/apps, DELETE too
    GET  /_sandbox/calls             every call's record, newest last
    GET  /_sandbox/calls/{call_sid}  one call's record; ?wait=S holds the answer up to S
                                     seconds until the call has ended
    PUT  /_sandbox/pstn/{number}     how a PSTN phone answers outbound calls:
                                     {"behaviour": answer|busy|no-answer|unreachable,
                                     "ring_s", "hangup_after_s"}
    GET  /_sandbox/pstn              the phones set so far
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import aiohttp

from reconciler.sandbox.store import Store
from reconciler.sandbox.voice import calls_api, dialer, flows, inbound
from reconciler.sandbox.voice.pstn import PhoneError, Pstn, phone
from reconciler.sandbox.voice.records import Call, Calls
from reconciler.sip import rtp

DEFAULT_CALLER = "+919876543210"
DEFAULT_HANGUP_S = 5.0
MAX_WAIT_S = 600.0

Answer = tuple[int, Any]


class Voice:
    """The voice side's state: calls, PSTN phones, and how to reach partners."""

    def __init__(self, store: Store, settings: dialer.Settings | None, *, seed: int | None) -> None:
        self.store = store
        self.settings = settings  # None: started without --sip-port
        self.calls = Calls()
        self.pstn = Pstn()
        self.flows = flows.Flows()
        self.session: aiohttp.ClientSession | None = None
        self.rng = random.Random(None if seed is None else f"{seed}:calls")

    def reset(self) -> None:
        self.calls.clear()
        self.pstn.clear()
        self.flows.clear()

    async def close(self) -> None:
        await self.calls.stop()
        if self.session is not None:
            await self.session.close()

    async def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> Answer:
        parts = path.strip("/").split("/")[1:]  # after "_sandbox"
        routes: dict[tuple[str, int], Callable[[], Awaitable[Answer]]] = {
            ("POST", 1): lambda: self._start(body),
            ("GET", 1): self._list,
            ("GET", 2): lambda: self._one(parts[1], query),
        }
        if parts[0] in ("flows", "apps"):
            apps = parts[0] == "apps"
            key = (f"app:{unquote(parts[1])}" if apps else unquote(parts[1])) if parts[1:] else ""
            if method == "PUT" and len(parts) == 2:
                return self._set_flow(key, body)
            if method == "DELETE" and len(parts) == 2:
                return self._remove_flow(key, query)
            if method == "GET" and len(parts) == 1:
                name = "app_id" if apps else "did"
                listed = [
                    {"account": account, name: did.removeprefix("app:"), **flow.document()}
                    for (account, did), flow in sorted(self.flows.flows.items())
                    if did.startswith("app:") == apps
                ]
                return 200, {parts[0]: listed}
        elif parts[0] == "pstn":
            if method == "PUT" and len(parts) == 2:
                return self._set_phone(unquote(parts[1]), body)
            if method == "GET" and len(parts) == 1:
                phones = {n: p.document() for n, p in sorted(self.pstn.phones.items())}
                return 200, {"phones": phones}
        elif (method, len(parts)) in routes:
            return await routes[(method, len(parts))]()
        return 404, {"ok": False, "error": f"no control endpoint {method} {path}"}

    async def _start(self, body: bytes) -> Answer:
        if self.settings is None:
            return 409, {
                "ok": False,
                "error": "the sandbox's SIP side is off: start it with --sip-port PORT",
            }
        try:
            document = json.loads(body or b"{}")
        except ValueError as exc:
            return 400, {"ok": False, "error": f"not valid JSON: {exc}"}
        try:
            request = self._request(document)
            call, routed = inbound.route(self.store, self.flows, request)
        except inbound.CallError as exc:
            return 400, {"ok": False, "error": str(exc)}
        if self.session is None:
            self.session = aiohttp.ClientSession()
        context = inbound.Context(
            self.store,
            self.flows,
            self.settings,
            self.rng,
            self.session,
            self.pstn,
            at=request.at,
            audio=request.audio,
        )

        async def run() -> None:
            if routed is not None:
                try:
                    await inbound.run(call, routed, context, hangup_after=request.hangup_after)
                finally:
                    if not call.done.is_set():
                        call.end("failed", "the sandbox stopped during the call")

        self.calls.start(call, run())
        return 201, {"ok": True, "call_sid": call.sid, "uri": f"/_sandbox/calls/{call.sid}"}

    def _account(self, document: dict[str, Any]) -> str:
        accounts = sorted(self.store.accounts)
        account = document.get("account")
        if account is None:
            if len(accounts) != 1:
                raise inbound.CallError(f"name the account: one of {', '.join(accounts)}")
            return accounts[0]
        if account not in self.store.accounts:
            raise inbound.CallError(f"no account {account} in this sandbox")
        return str(account)

    def _set_flow(self, did: str, body: bytes) -> Answer:
        try:
            document = json.loads(body or b"{}")
            value = flows.flow(document)
            account = self._account(document)
        except (ValueError, inbound.CallError) as exc:
            return 400, {"ok": False, "error": str(exc)}
        if not did.startswith("app:") and not inbound.E164.fullmatch(did):
            hint = f": {'+91' + did[1:]}?" if re.fullmatch(r"0[0-9]{10}", did) else ""
            return 400, {"ok": False, "error": f"{did!r} is not a DID in E.164{hint}"}
        self.flows.set(account, did, value)
        held = self.store.accounts[account]
        warnings = [
            f"{applet}: trunk {sid} is not a trunk of account {account} (yet): calls fail there"
            for applet, sid in (
                ("connect", value.connect.trunk),
                ("passthru.then", value.passthru.then.trunk if value.passthru else None),
            )
            if sid is not None and sid not in held.trunks
        ]
        if not did.startswith("app:") and did not in held.dids:
            warnings.append(f"{did} is not mapped on any trunk of {account} (yet): apply first")
        document = {"ok": True, "account": account, "did": did, **value.document()}
        return 200, {**document, "warnings": warnings}

    def _remove_flow(self, key: str, query: dict[str, str]) -> Answer:
        try:
            account = self._account(dict(query))
        except inbound.CallError as exc:
            return 400, {"ok": False, "error": str(exc)}
        removed = self.flows.flows.pop((account, key), None)
        if removed is None:
            return 404, {"ok": False, "error": f"no flow for {key.removeprefix('app:')}"}
        return 200, {"ok": True}

    def _request(self, document: object) -> inbound.Request:
        if not isinstance(document, dict):
            raise inbound.CallError('send a JSON object, like {"to": "+918040264208"}')
        known = {"to", "from", "account", "hangup_after_s", "at", "play"}
        unknown = set(document) - known
        if unknown:
            raise inbound.CallError(
                f"unknown field(s) {sorted(unknown)}: {', '.join(sorted(known))}"
            )
        audio = None
        if document.get("play") is not None:
            try:
                audio = rtp.wav(str(document["play"]))
            except rtp.AudioError as exc:
                raise inbound.CallError(str(exc)) from None
        at = None
        if document.get("at") is not None:
            try:
                at = datetime.fromisoformat(str(document["at"]))
            except ValueError:
                raise inbound.CallError("at must be an ISO 8601 time with an offset") from None
            if at.tzinfo is None:
                raise inbound.CallError("at must carry its offset, like 2026-12-02T10:30+05:30")
        account = self._account(document)
        hangup = document.get("hangup_after_s", DEFAULT_HANGUP_S)
        if (
            isinstance(hangup, bool)
            or not isinstance(hangup, int | float)
            or not 0 < hangup <= 3600
        ):
            raise inbound.CallError("hangup_after_s must be a number of seconds above 0, to 3600")
        return inbound.Request(
            account=str(account),
            to=str(document.get("to", "")),
            from_=str(document.get("from", DEFAULT_CALLER)),
            hangup_after=float(hangup),
            at=at,
            audio=audio,
        )

    async def _list(self) -> Answer:
        return 200, {"calls": [call.document() for call in self.calls.calls.values()]}

    async def _one(self, sid: str, query: dict[str, str]) -> Answer:
        call = self.calls.calls.get(sid)
        if call is None:
            return 404, {"ok": False, "error": f"no call {sid}"}
        try:
            wait = min(float(query.get("wait", "0")), MAX_WAIT_S)
        except ValueError:
            return 400, {"ok": False, "error": "wait must be a number of seconds"}
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await call.done.wait()
        return 200, call.document()

    def _set_phone(self, number: str, body: bytes) -> Answer:
        try:
            self.pstn.set(number, phone(json.loads(body or b"{}")))
        except (ValueError, PhoneError) as exc:
            return 400, {"ok": False, "error": str(exc)}
        return 200, {"ok": True, "number": number, **self.pstn.get(number).document()}

    async def api(
        self, account: str, method: str, path: str, form: Mapping[str, str]
    ) -> tuple[int, str, str]:
        """The Calls API (``calls_api``): (status, body, content type)."""
        as_json = path.endswith(".json")
        parts = path.removesuffix(".json").split("/")  # "", v1, Accounts, sid, Calls, x
        try:
            if method == "POST" and parts[4:] == ["Calls", "connect"]:
                return self._connect(account, calls_api.connect_request(form), as_json)
            if method == "GET" and len(parts) == 6 and parts[4] == "Calls":
                call = self.calls.calls.get(parts[5])
                if call is None or call.account != account:
                    raise calls_api.ApiCallError(404, f"no call {parts[5]} in account {account}")
                body, kind = calls_api.render({"Call": calls_api.details(call)}, as_json=as_json)
                return 200, body, kind
            raise calls_api.ApiCallError(404, f"no Calls API route {method} {path}")
        except calls_api.ApiCallError as exc:
            return calls_api.failure(exc.status, str(exc), as_json=as_json)

    def _connect(
        self, account: str, asked: calls_api.Connect, as_json: bool
    ) -> tuple[int, str, str]:
        if self.settings is None:
            raise calls_api.ApiCallError(
                503, "the sandbox's SIP side is off: start it with --sip-port PORT"
            )
        held = self.store.accounts[account]
        if asked.caller_id not in held.dids:
            raise calls_api.ApiCallError(
                400, f"CallerId {asked.caller_id} is not a number of this account (map it first)"
            )
        flow = self.flows.get(account, f"app:{asked.app_id}")
        if flow is None:
            raise calls_api.ApiCallError(
                400,
                f"no flow {asked.app_id} in this sandbox: set one with PUT "
                f"/_sandbox/apps/{asked.app_id}",
            )
        call = Call(account, "outbound-api", asked.customer, asked.caller_id)
        if self.session is None:
            self.session = aiohttp.ClientSession()
        context = inbound.Context(
            self.store, self.flows, self.settings, self.rng, self.session, self.pstn
        )
        session = self.session

        async def run() -> None:
            try:
                await inbound.run_api(
                    call,
                    held,
                    flow,
                    context,
                    ring_for=asked.time_out,
                    hangup_after=min(asked.time_limit, DEFAULT_HANGUP_S),
                )
            finally:
                if not call.done.is_set():
                    call.end("failed", "the sandbox stopped during the call")
            # Not reached when the sandbox stops mid-call: nothing holds its shutdown.
            if asked.status_callback:
                await _status_callback(session, asked.status_callback, call)

        self.calls.start(call, run())
        body, kind = calls_api.render({"Call": calls_api.details(call)}, as_json=as_json)
        return 200, body, kind


async def _status_callback(session: aiohttp.ClientSession, url: str, call: Call) -> None:
    """POST the call's end to its StatusCallback, as Exotel does (form data)."""
    form = {
        "CallSid": call.sid,
        "Status": calls_api.STATUSES.get(call.status, call.status),
        "RecordingUrl": "",
        "DateUpdated": flows.stamp(call.updated_at()),
    }
    exchange: dict[str, object] = {
        "kind": "status_callback",
        "url": flows.shown_url(url),
        "status": None,
    }
    try:
        async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=15)) as sent:
            exchange["status"] = sent.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        exchange["error"] = str(exc) or type(exc).__name__
    call.exchanges.append(exchange)
