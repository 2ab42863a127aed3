"""Runs the sandbox: sockets, TLS, signals, logging; the request pipeline is ``app.py``.

Called by the sandbox's entry point (``reconciler sandbox``). Prints one line to
stdout once it listens (``listening on URL``), and one for each SIP listener after it
(``sip listening on sip:HOST:PORT;transport=tcp|tls``), so scripts and tests can start
it on port 0 and read where it went; everything else is a structured log line on stderr.
On SIGINT or SIGTERM it abandons held responses, gives running requests a moment,
and returns well within the 5 seconds the contract allows.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable

import structlog
from aiohttp import web

from reconciler.sandbox.app import Sandbox
from reconciler.sandbox.config import Config
from reconciler.sandbox.voice.gateway import Gateway

log = structlog.get_logger("sandbox")

SHUTDOWN_GRACE_SECONDS = 1.0  # running requests get this long; held ones are released at once


def configure_logging(*, level: int = logging.INFO) -> None:
    """JSON lines on stderr, or a readable console form when stderr is a terminal."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class StartupError(Exception):
    """The sandbox cannot start; the message says why and what to change."""


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise StartupError(
            f"cannot load certificate {config.certfile}"
            f"{f' with key {config.keyfile}' if config.keyfile else ''}: {exc}"
        ) from exc
    return context


async def _start_sip(
    sandbox: Sandbox, config: Config, context: ssl.SSLContext | None
) -> tuple[Gateway | None, list[str]]:
    """The SIP gateway's listeners (``--sip-port``, ``--sip-tls-port``), when asked for."""
    settings = sandbox.voice.settings
    if settings is None:
        return None, []
    gateway = Gateway(
        sandbox.store, sandbox.voice.calls, sandbox.voice.pstn, settings, peers=dict(config.peers)
    )
    urls = []
    if config.sip_tls_port is not None and context is None:
        raise StartupError("--sip-tls-port needs --certfile (and --keyfile)")
    for port, tls in ((config.sip_port, None), (config.sip_tls_port, context)):
        if port is None:
            continue
        try:
            urls.append(await gateway.listen(config.host, port, tls))
        except OSError as exc:
            await gateway.close()
            raise StartupError(
                f"cannot listen for SIP on {config.host}:{port}: {exc.strerror}"
            ) from exc
    return gateway, urls


async def serve(
    config: Config,
    *,
    on_ready: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set, for in-process use)."""
    sandbox = Sandbox(config)
    context = _ssl_context(config)
    server = web.Server(sandbox.handle, handler_cancellation=True, access_log=None)
    runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from exc
    port = runner.addresses[0][1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"{config.scheme}://{host}:{port}"
    try:
        gateway, sip_urls = await _start_sip(sandbox, config, context)
    except StartupError:
        await runner.cleanup()
        raise
    loop = asyncio.get_running_loop()
    signals = () if stop is not None else (signal.SIGINT, signal.SIGTERM)
    stop = stop or asyncio.Event()
    for signum in signals:  # only the process's own sandbox listens for signals
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "listening",
        url=url,
        profile=config.profile,
        accounts=[a.sid for a in config.accounts],
        rate_limit=config.rate_limit,
        latency_ms=config.latency_ms,
        state_file=str(config.state_file) if config.state_file else None,
    )
    on_ready(url)
    for sip_url in sip_urls:
        log.info(
            "sip_listening", uri=sip_url, resolve=[":".join(map(str, r)) for r in config.resolve]
        )
        on_ready(sip_url)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        sandbox.shutting_down.set()
        if gateway is not None:  # first: no new call may start while the calls stop
            await gateway.close()
        await sandbox.voice.close()
        await runner.cleanup()
        for signum in signals:
            loop.remove_signal_handler(signum)
