"""``reconciler serve``: the Connect applet's Dynamic URL and the Passthru handoff webhook.

Called by the CLI. An ASGI app (Starlette, served by uvicorn) answering:

    GET /connect   Exotel's Dynamic URL: where an inbound call goes (JSON)
    GET /handoff   Exotel's Passthru: 200 to the agents' Connect applet, 302/404 to hangup
    GET /healthz   what is loaded

Decisions are ``routing.decide``'s, snapshots ``routing.snapshot``'s (rebuilt aside when
their files change and swapped in whole; one that fails to load leaves the old one
serving), the agents check ``routing.agents``'. This module answers, and logs one line
per decision: DID, rule, status, CallSid. Never the caller's number. No request ever
gets a 500: anything unexpected is a 404 the flow treats as a failure, and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.routing import agents as agents_check
from reconciler.routing import decide as routing
from reconciler.routing.snapshot import Loader, utc_now

log = structlog.get_logger("reconciler.serve")
Clock = Callable[[], datetime]


async def _ask_agents(
    snapshot: routing.Snapshot, request: Request, decision: routing.Decision
) -> routing.Decision:
    """The handoff's agents check; the log tells a failed check (fallback) from a no."""
    route = routing.handoff_route(snapshot, request.query_params)
    if route is None or route.handoff is None:  # pragma: no cover (handoff said so)
        raise LookupError("the handoff rule went away")
    agents = route.handoff.agents
    said = await agents_check.ask(str(decision.agents_url), timeout=agents.timeout_ms / 1000)
    available = agents.fallback if said is None else said
    answer = routing.agents_answer(route, available=available, did=decision.did)
    if said is None:  # the agents URL failed or was slow: the fallback answered
        answer = replace(answer, rule=f"{answer.rule}:fallback")
    return answer


def create_app(
    path: Path,
    *,
    clock: Clock = utc_now,
    reload_interval: float = 2.0,
    loader: Loader | None = None,
) -> Starlette:
    if loader is None:
        loader = Loader(path)
        loader.reload()

    def answer(decision: routing.Decision, request: Request, kind: str) -> JSONResponse:
        with contextlib.suppress(OSError, ValueError):  # a broken log stream is no 500
            _log_decision(decision, request, kind)
        return JSONResponse(decision.body, status_code=decision.status)

    def _log_decision(decision: routing.Decision, request: Request, kind: str) -> None:
        log.info(
            "serve.decision",
            kind=kind,
            did=decision.did,
            rule=decision.rule,
            status=decision.status,
            call_sid=request.query_params.get("CallSid"),
        )

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
                decision = await _ask_agents(snapshot, request, decision)
        except Exception:
            log.exception("serve.failed", kind="handoff")
            decision = routing.Decision(404, {"result": "hangup"}, None, "error")
        return answer(decision, request, "handoff")

    async def healthz(request: Request) -> JSONResponse:
        """200 while routes are served (a load balancer keeps sending calls), 503 only
        when nothing ever loaded. ``stale`` (with the ``problem``) says the newest files
        failed to load and the last good state is serving: alert on it, do not restart."""
        snapshot = loader.snapshot
        document: dict[str, object] = {
            # Not OK without a route: every call would be refused (the process stays up,
            # still serving the last good state, so a replica is not dropped mid-call).
            "ok": bool(snapshot.loaded_at) and len(snapshot) > 0 and not loader.refused,
            "stale": bool(loader.problem),
            "loaded_at": snapshot.loaded_at,
            "routes": len(snapshot),
            "trunks": len(snapshot.sids),
        }
        if loader.problem:
            document["problem"] = loader.problem
        serving = bool(snapshot.loaded_at) and len(snapshot) > 0
        return JSONResponse(document, status_code=200 if serving else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def watch() -> None:
            while True:
                await asyncio.sleep(reload_interval)
                try:
                    await asyncio.to_thread(loader.reload)
                except Exception as error:  # keep watching: the next change may fix it
                    loader.error = error
                    log.exception("serve.reload_failed")

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


def run(
    path: Path,
    *,
    host: str,
    port: int,
    reload_interval: float,
    clock: Clock | None = None,
) -> None:
    """Load (refusing files that do not), bind, say where, then serve until stopped."""
    import uvicorn  # noqa: PLC0415 (only the serve command needs it)

    loader = Loader(path)
    loader.reload(log_failure=False)  # the CLI reports it, once
    if isinstance(loader.error, ReconcilerError):  # refuse to start on files that do not load
        raise loader.error
    if not len(loader.snapshot):  # every call would get a 404 while health checks pass
        raise ConfigError(
            f"{path} declares no routes: nothing to serve (every call would be refused). "
            "Check the checkout, or declare routes: first."
        )
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot serve on {host}:{port}: {error.strerror} (another service on that port? "
            "choose one with --port)"
        ) from None
    bound = listener.getsockname()[1]
    print(f"serving routes on http://{host}:{bound} (/connect, /handoff, /healthz)", flush=True)
    app = create_app(path, reload_interval=reload_interval, loader=loader, clock=clock or utc_now)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])
