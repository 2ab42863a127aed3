"""``reconciler serve``: the Connect applet's Dynamic URL and the Passthru handoff webhook.

Called by the CLI. An ASGI app (Starlette, served by uvicorn) answering:

    GET /connect   Exotel's Dynamic URL: where an inbound call goes (JSON)
    GET /handoff   Exotel's Passthru: 200 to the agents' Connect applet, 302/404 to hangup
    GET /healthz   what is loaded (200 while routes are served)
    GET /readyz    200 once a first good load is in place
    GET /metrics   Prometheus' text format (``routing.metrics``)

Decisions are ``routing.decide``'s, snapshots ``routing.snapshot``'s (rebuilt aside when
their files change and swapped in whole; one that fails to load leaves the old one
serving), the agents check ``routing.agents``' (one client per process), who may ask
``routing.access``' (a token, an allow-list), and the connection's defences against
hostile clients ``routing.protocol``'s. This module answers, and logs one line per
decision: DID, rule, status, CallSid (cut to 64 characters). Never the caller's number.
No request ever gets a 500: anything unexpected is a 404 the flow treats as a failure,
and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.limits import open_files
from reconciler.routing import access as guard
from reconciler.routing import decide as routing
from reconciler.routing import protocol
from reconciler.routing.agents import Agents
from reconciler.routing.snapshot import Loader, utc_now

if TYPE_CHECKING:
    import uvicorn

    from reconciler.routing.metrics import Metrics

log = structlog.get_logger("reconciler.serve")
Clock = Callable[[], datetime]
LogDecisions = Literal["all", "failures", "none"]
MAX_LOGGED = 64  # characters of a caller-supplied value in a log line (a CallSid is 32)
BACKLOG = 2048
QUIET_RULES = frozenset({"no-route", "no-handoff", "error", "not-loaded"})


@dataclass(frozen=True)
class Options:
    """How ``run`` serves (the CLI's options)."""

    host: str = "127.0.0.1"
    port: int = 8080
    reload_interval: float = 2.0
    workers: int = 1
    certfile: Path | None = None
    keyfile: Path | None = None
    access: guard.Access = field(default_factory=guard.Access)
    limits: protocol.Limits = field(default_factory=protocol.Limits)
    keep_alive: int = 5  # seconds an idle kept-alive connection is kept
    graceful_timeout: int = 30  # seconds to finish in-flight requests after SIGTERM
    log_decisions: LogDecisions = "all"
    parser: Literal["auto", "httptools", "h11"] = "auto"  # httptools when installed


def bounded(value: str | None) -> str | None:
    """A caller-supplied value as logged: at most MAX_LOGGED characters."""
    if value is None or len(value) <= MAX_LOGGED:
        return value
    return value[:MAX_LOGGED] + "..."


MAX_FORM_BYTES = 64 * 1024  # a Passthru POST carries a call's details: a few hundred bytes


async def parameters(request: Request) -> Mapping[str, str] | routing.Decision:
    """The call's details: the query string, and on a POST also a form body
    (``application/x-www-form-urlencoded``), whose fields win. Or the refusal to answer
    with: 413 past MAX_FORM_BYTES, 400 when the client went away mid-body."""
    query = request.query_params
    if request.method != "POST":  # every GET: nothing more to look at
        return query
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return query
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return TOO_LARGE
    except ClientDisconnect:  # closed mid-body (or by the header timeout): no traceback
        return GONE
    fields = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {**query, **dict(fields)}


def logged(decision: routing.Decision, level: LogDecisions) -> bool:
    """Whether ``--log-decisions`` logs this decision: all, or only those that are not
    routing as declared (no route, a trunk not in the ledger, a failed agents check)."""
    if level == "all":
        return True
    return level == "failures" and (decision.rule in QUIET_RULES or ":" in decision.rule)


async def _ask_agents(
    snapshot: routing.Snapshot,
    query: Mapping[str, str],
    decision: routing.Decision,
    agents: Agents,
) -> routing.Decision:
    """The handoff's agents check; the log tells a failed check (fallback) from a no."""
    route = routing.handoff_route(snapshot, query)
    if route is None or route.handoff is None:  # pragma: no cover (handoff said so)
        raise LookupError("the handoff rule went away")
    rule = route.handoff.agents
    said = await agents.ask(str(decision.agents_url), timeout=rule.timeout_ms / 1000)
    available = rule.fallback if said is None else said
    answer = routing.agents_answer(route, available=available, did=decision.did)
    if said is None:  # the agents URL failed or was slow: the fallback answered
        answer = replace(answer, rule=f"{answer.rule}:fallback")
    return answer


NOT_LOADED = routing.Decision(503, {"error": "routes are not loaded yet"}, None, "not-loaded")
TOO_LARGE = routing.Decision(413, {"error": "the form is too large"}, None, "too-large")
GONE = routing.Decision(400, {"error": "the request did not arrive"}, None, "client-gone")


class Service:
    """The app's handlers over one loader, one agents client and one set of metrics."""

    def __init__(
        self,
        loader: Loader,
        metrics: Metrics,
        *,
        clock: Clock,
        reload_interval: float,
        log_decisions: LogDecisions,
    ) -> None:
        self.loader = loader
        self.metrics = metrics
        self.clock = clock
        self.reload_interval = reload_interval
        self.log_decisions = log_decisions
        self.agents = Agents()
        self.events = protocol.Events.create(
            refused=metrics.refused.inc,
            timed_out=metrics.timeouts.inc,
            client_error=metrics.client_errors.inc,
        )
        self._seen = (0, 0)  # the loader's reloads and failures already counted
        # A wrong --trusted-hops refuses every call: say so in the log, at most every 10 s.
        self._denied = protocol.Throttled("serve.denied")

    def observe(self) -> None:
        """The loader's counts and state into the metrics (each tick, and each scrape)."""
        loader, metrics = self.loader, self.metrics
        metrics.reloads.inc(loader.reloads - self._seen[0])
        metrics.reload_failures.inc(loader.failures - self._seen[1])
        self._seen = (loader.reloads, loader.failures)
        metrics.routes.set(len(loader.snapshot))
        metrics.trunks.set(len(loader.snapshot.sids))
        metrics.stale.set(int(loader.stale))
        metrics.age.set(time.time() - loader.checked_at)

    def answer(
        self, decision: routing.Decision, query: Mapping[str, str], kind: str, began: float
    ) -> Response:
        self.metrics.answers.labels(kind, decision.rule, str(decision.status)).inc()
        self.metrics.latency.labels(kind).observe(time.perf_counter() - began)
        if logged(decision, self.log_decisions):
            with contextlib.suppress(OSError, ValueError):  # a broken log stream is no 500
                log.info(
                    "serve.decision",
                    kind=kind,
                    did=decision.did,
                    rule=decision.rule,
                    status=decision.status,
                    call_sid=bounded(query.get("CallSid")),
                )
        return JSONResponse(decision.body, status_code=decision.status)

    async def connect(self, request: Request) -> Response:
        began = time.perf_counter()
        snapshot, query = self.loader.snapshot, await parameters(request)
        if isinstance(query, routing.Decision):  # refused: counted like any answer
            return self.answer(query, {}, "connect", began)
        try:
            if not snapshot.loaded_at:
                decision = NOT_LOADED
            else:
                decision = routing.connect(snapshot, query, self.clock())
        except Exception:  # never a 500 to Exotel: the flow treats 404 as a failure
            log.exception("serve.failed", kind="connect")
            decision = routing.Decision(404, {"error": "internal"}, None, "error")
        return self.answer(decision, query, "connect", began)

    async def handoff(self, request: Request) -> Response:
        began = time.perf_counter()
        snapshot, query = self.loader.snapshot, await parameters(request)  # one snapshot
        if isinstance(query, routing.Decision):
            return self.answer(query, {}, "handoff", began)
        try:
            if not snapshot.loaded_at:
                decision = NOT_LOADED
            else:
                decision = routing.handoff(snapshot, query, self.clock())
                if decision.agents_url is not None:
                    decision = await _ask_agents(snapshot, query, decision, self.agents)
        except Exception:
            log.exception("serve.failed", kind="handoff")
            decision = routing.Decision(404, {"result": "hangup"}, None, "error")
        return self.answer(decision, query, "handoff", began)

    async def healthz(self, request: Request) -> JSONResponse:
        """200 while routes are served (a load balancer keeps sending calls), 503 only
        when nothing ever loaded. ``stale`` (with the ``problem``) says the newest files
        failed to load, or a ledger is missing, and the last good state is serving:
        alert on it, do not restart. The ``problem`` names files only to a caller that
        authenticated (the token); others get it without paths."""
        loader = self.loader
        snapshot = loader.snapshot
        serving = bool(snapshot.loaded_at) and len(snapshot) > 0
        document: dict[str, object] = {
            # Not OK without a route: every call would be refused (the process stays up,
            # still serving the last good state, so a replica is not dropped mid-call).
            "ok": serving and not loader.refused,
            "stale": loader.stale,
            "loaded_at": snapshot.loaded_at,
            "routes": len(snapshot),
            "trunks": len(snapshot.sids),
        }
        if loader.stale:
            authenticated = request.scope.get("state", {}).get("authenticated", False)
            document["problem"] = loader.problem if authenticated else loader.public_problem
        return JSONResponse(document, status_code=200 if serving else 503)

    async def readyz(self, request: Request) -> JSONResponse:
        """Ready once a first good load is in place (and for as long as the process
        serves: a later failed reload keeps the last good state, still ready)."""
        ready = bool(self.loader.snapshot.loaded_at) and len(self.loader.snapshot) > 0
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def prometheus(self, request: Request) -> Response:
        from reconciler.routing.metrics import CONTENT_TYPE  # noqa: PLC0415

        self.observe()
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                await asyncio.to_thread(self.loader.reload)
            except Exception as error:  # keep watching: the next change may fix it
                self.loader.error = error
                self.loader.failures += 1
                log.exception("serve.reload_failed")
            self.observe()
            self.events.flush()  # the end of a burst of warnings is told too
            self._denied.flush()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[dict[str, Any]]:
        protocol.quiet_loop_errors(asyncio.get_running_loop(), self.events)
        self.agents.open()
        self.observe()
        task = asyncio.create_task(self.watch())
        try:
            yield {protocol.EVENTS_KEY: self.events}
        finally:
            task.cancel()
            await self.agents.close()

    def denied(self, status: int, scope: guard.Scope) -> None:
        self.metrics.denied.labels(str(status)).inc()
        # Never the path: it may hold a wrong token, or the right one misplaced.
        self._denied(status=status, method=bounded(str(scope.get("method"))))


def create_app(
    path: Path,
    *,
    clock: Clock = utc_now,
    reload_interval: float = 2.0,
    loader: Loader | None = None,
    access: guard.Access | None = None,
    log_decisions: LogDecisions = "all",
) -> Starlette:
    from reconciler.routing.metrics import Metrics  # noqa: PLC0415 (after PROMETHEUS_MULTIPROC_DIR is set)

    if loader is None:
        loader = Loader(path)
        loader.reload()
    service = Service(
        loader,
        Metrics(),
        clock=clock,
        reload_interval=reload_interval,
        log_decisions=log_decisions,
    )
    handlers = dict(zip(guard.CALLS, (service.connect, service.handoff), strict=True))
    calls = ["GET", "POST"]  # the Passthru applet may POST (docs/routing.md); HEAD with GET
    app = Starlette(
        routes=[
            *[
                Route(path, handlers[path.rstrip("/")], methods=calls)
                for path in sorted(guard.CALL_PATHS)
            ],
            Route("/healthz", service.healthz),
            Route("/readyz", service.readyz),
            Route("/metrics", service.prometheus),
        ],
        middleware=[
            Middleware(guard.Guard, access=access or guard.Access(), on_denied=service.denied)
        ],
        lifespan=service.lifespan,
    )
    app.router.redirect_slashes = False
    return app


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound and listening (connections queue from now on). Made
    with ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on each accepted socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot serve on {host}:{port}: {error.strerror} (another service on that port? "
            "choose one with --port)"
        ) from None
    return listener


def _check_tls(options: Options) -> None:
    if options.certfile is None and options.keyfile is None:
        return
    if options.certfile is None:
        raise ConfigError("--keyfile needs --certfile (the certificate chain it belongs to)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.certfile, options.keyfile)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"cannot use --certfile {options.certfile}"
            + (f" --keyfile {options.keyfile}" if options.keyfile else "")
            + f": {getattr(error, 'strerror', None) or error}"
        ) from None


def _file_limit(wanted: int) -> int:
    """Connections the process can hold, the open-files limit raised first; room is kept
    for the agents client's pool, the files watched and the logs."""
    from reconciler.routing.agents import MAX_CONNECTIONS  # noqa: PLC0415

    limit = max(16, open_files(wanted, spare=MAX_CONNECTIONS + 64))
    if limit < wanted:
        log.warning(
            "serve.connection_limit_lowered",
            wanted=wanted,
            limit=limit,
            hint="raise the open-files limit (ulimit -n) to hold more connections",
        )
    return limit


def server(app: Starlette, options: Options) -> uvicorn.Server:
    """The uvicorn server ``run`` starts, with the protocol, timeouts and TLS of ``options``."""
    import uvicorn  # noqa: PLC0415 (only the serve command needs it)

    config = uvicorn.Config(
        app,
        http=protocol.guarded(options.limits, options.parser),
        lifespan="on",
        log_level="error",  # client errors and limits are logged by protocol, throttled
        access_log=False,
        proxy_headers=False,  # the allow-list reads X-Forwarded-For itself (--trusted-hops)
        timeout_keep_alive=options.keep_alive,
        timeout_graceful_shutdown=options.graceful_timeout,
        ssl_certfile=options.certfile,
        ssl_keyfile=options.keyfile,
        backlog=BACKLOG,
    )
    return uvicorn.Server(config)


def _serve(app: Starlette, listener: socket.socket, options: Options) -> None:
    """One uvicorn server on the listener until SIGTERM or SIGINT, then drain."""
    running = server(app, options)

    def stop(signum: int, frame: object) -> None:
        running.should_exit = True

    # Until uvicorn installs its own handlers, a stop signal stops it as soon as it has
    # started; and uvicorn re-raises the signal once drained, to the handler it found:
    # this one, so a drained stop is exit 0 rather than death by that signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    running.run(sockets=[listener])


def run(path: Path, options: Options, *, clock: Clock | None = None) -> None:
    """Load (refusing files that do not), bind, say where, then serve until stopped."""
    loader = Loader(path)
    loader.reload(log_failure=False)  # the CLI reports it, once
    if isinstance(loader.error, ReconcilerError):  # refuse to start on files that do not load
        raise loader.error
    if not len(loader.snapshot):  # every call would get a 404 while health checks pass
        raise ConfigError(
            f"{path} declares no routes: nothing to serve (every call would be refused). "
            "Check the checkout, or declare routes: first."
        )
    _check_tls(options)
    # Per worker: each is a process of its own, with its own open-files limit.
    limits = replace(options.limits, max_connections=_file_limit(options.limits.max_connections))
    options = replace(options, limits=limits)
    listener = listen(options.host, options.port)
    bound = listener.getsockname()[1]
    scheme = "https" if options.certfile else "http"
    print(
        f"serving routes on {scheme}://{options.host}:{bound} (/connect, /handoff, /healthz, "
        f"/readyz, /metrics){'' if options.workers == 1 else f' with {options.workers} workers'}",
        flush=True,
    )

    def app() -> Starlette:
        return create_app(
            path,
            reload_interval=options.reload_interval,
            loader=loader,
            clock=clock or utc_now,
            access=options.access,
            log_decisions=options.log_decisions,
        )

    if options.workers == 1:
        _serve(app(), listener, options)
        log.info("serve.stopped")
        return
    from reconciler.routing import workers  # noqa: PLC0415

    made = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # before prometheus_client is imported
        made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reconciler-serve-")

    def work(index: int) -> None:
        loader.reload()  # the files may have changed since the parent read them
        _serve(app(), listener, options)

    from reconciler.routing.metrics import worker_exited  # noqa: PLC0415

    try:
        status = workers.supervise(
            options.workers,
            work,
            listener=listener,
            grace=options.graceful_timeout,
            exited=worker_exited,
        )
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    if status:
        raise ConfigError("serve's workers kept exiting: stopped (see the log above)")
