"""``reconciler serve``: the Connect applet's Dynamic URL and the Passthru handoff webhook.

Called by the CLI. An ASGI app (Starlette, served by uvicorn) answering:

    GET /connect   Exotel's Dynamic URL: where an inbound call goes (JSON)
    GET /handoff   Exotel's Passthru: 200 to the agents' Connect applet, 302/404 to hangup
    GET /healthz   what is loaded

Decisions are ``routing``'s; this module loads manifests and ledgers into a snapshot,
reloads them when their files change (a new snapshot is built aside and swapped in
whole, so a request never sees half of a reload; one that fails to load leaves the old
one serving), and logs one line per decision: DID, rule, status, CallSid. Never the
caller's number. No request ever gets a 500: anything unexpected is a 404 the flow
treats as a failure, and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler import ledger as ledgers
from reconciler import routing
from reconciler.client import probe
from reconciler.errors import ReconcilerError
from reconciler.load import discover, load
from reconciler.pipeline import ledger_path

log = structlog.get_logger("reconciler.serve")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Loader:
    """Builds snapshots from the manifests and ledgers, and knows when they changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.snapshot = routing.Snapshot()
        self._seen: dict[str, int] = {}

    def _watched(self) -> dict[str, int]:
        files = list(discover(self.path)) if self.path.exists() else []
        state = self.path if self.path.is_dir() else self.path.parent
        files += list(state.rglob("*.json"))
        stamps: dict[str, int] = {}
        for file in files:
            with contextlib.suppress(OSError):
                stamps[str(file)] = file.stat().st_mtime_ns
        return stamps

    def reload(self) -> bool:
        """Load afresh when a file changed; True when a new snapshot is in place."""
        stamps = self._watched()
        if stamps == self._seen and self.snapshot.loaded_at:
            return False
        self._seen = stamps
        manifests = load(self.path)
        if manifests.errors:
            log.error("serve.reload_failed", errors=[p.text() for p in manifests.errors[:10]])
            return False
        sids: dict[tuple[str, str], str] = {}
        try:
            for account in manifests.accounts.values():
                read = ledgers.read(
                    ledger_path(manifests, account),
                    account=account.name,
                    account_sid=account.spec.sid,
                )
                sids.update({(account.name, name): e.sid for name, e in read.trunks.items()})
        except ReconcilerError as error:
            log.error("serve.reload_failed", errors=[str(error)])
            return False
        self.snapshot = routing.Snapshot.build(
            [route.spec for route in manifests.routes],
            sids,
            utc_now().isoformat(timespec="seconds"),
        )
        log.info("serve.loaded", routes=len(manifests.routes), trunks=len(sids))
        return True


def create_app(path: Path, *, clock: Clock = utc_now, reload_interval: float = 2.0) -> Starlette:
    loader = Loader(path)
    loader.reload()

    def answer(decision: routing.Decision, request: Request, kind: str) -> JSONResponse:
        log.info(
            "serve.decision",
            kind=kind,
            did=decision.did,
            rule=decision.rule,
            status=decision.status,
            call_sid=request.query_params.get("CallSid"),
        )
        return JSONResponse(decision.body, status_code=decision.status)

    async def connect(request: Request) -> JSONResponse:
        try:
            decision = routing.connect(loader.snapshot, request.query_params, clock())
        except Exception:  # never a 500 to Exotel: the flow treats 404 as a failure
            log.exception("serve.failed", kind="connect")
            decision = routing.Decision(404, {"error": "internal"}, None, "error")
        return answer(decision, request, "connect")

    async def handoff(request: Request) -> JSONResponse:
        snapshot = loader.snapshot
        try:
            decision = routing.handoff(snapshot, request.query_params, clock())
            if decision.agents_url is not None:
                route = routing.handoff_route(snapshot, request.query_params)
                if route is None or route.handoff is None:  # pragma: no cover (handoff said so)
                    raise LookupError("the handoff rule went away")
                agents = route.handoff.agents
                said = await probe(decision.agents_url, timeout=agents.timeout_ms / 1000)
                available = agents.fallback if said is None else said
                decision = routing.agents_answer(route, available=available, did=decision.did)
        except Exception:
            log.exception("serve.failed", kind="handoff")
            decision = routing.Decision(404, {"result": "hangup"}, None, "error")
        return answer(decision, request, "handoff")

    async def healthz(request: Request) -> JSONResponse:
        snapshot = loader.snapshot
        return JSONResponse(
            {
                "ok": bool(snapshot.loaded_at),
                "loaded_at": snapshot.loaded_at,
                "routes": len(snapshot.routes) + (1 if snapshot.catch_all else 0),
                "trunks": len(snapshot.sids),
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def watch() -> None:
            while True:
                await asyncio.sleep(reload_interval)
                await asyncio.to_thread(loader.reload)

        task = asyncio.create_task(watch())
        try:
            yield
        finally:
            task.cancel()

    return Starlette(
        routes=[
            Route("/connect", connect),
            Route("/handoff", handoff),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )


def run(path: Path, *, host: str, port: int, reload_interval: float) -> None:
    import uvicorn  # noqa: PLC0415 (only the serve command needs it)

    app = create_app(path, reload_interval=reload_interval)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
