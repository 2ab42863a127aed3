"""``reconciler serve``: answer Exotel's Dynamic URL and handoff webhooks from the routes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import sandbox
from reconciler.cli import options
from reconciler.cli.common import EXIT_OK, moment
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from reconciler.cli.options import Commands

MIN_RELOAD_INTERVAL = 0.1  # seconds: any shorter only spends a core looking at files
TOKEN = "RECONCILER_SERVE_TOKEN"  # noqa: S105 (the variable's name)
ALLOW_FROM = "RECONCILER_SERVE_ALLOW_FROM"
TRUSTED_HOPS = "RECONCILER_SERVE_TRUSTED_HOPS"


def register(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="answer Exotel's Dynamic URL and handoff webhooks from the routes: manifests",
        description=(
            "Serve GET /connect (the Connect applet's Dynamic URL), GET /handoff (the Passthru "
            "applet) and GET /healthz from the manifests' routes, resolving trunk names to SIDs "
            "through the ledger. Reloads when manifests or ledgers change, without a restart. "
            f"With {TOKEN} set, every request but /healthz and /readyz must carry it (basic "
            "auth password, any user, or the path /t/TOKEN/connect). GET /metrics for "
            "Prometheus; GET /readyz once a first good load is in place."
        ),
    )
    options.path(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=sandbox.port_number, default=8080, help="port (default: %(default)s)"
    )
    serve.add_argument(
        "--at",
        "--now",
        dest="now",
        metavar="TIME",
        help="answer as if it were TIME (2026-12-02T19:30, Asia/Kolkata unless an offset is "
        "given), to try time rules without waiting for the hour",
    )
    serve.add_argument(
        "--reload-interval",
        type=_reload_interval,
        default=2.0,
        metavar="S",
        help="how often to look for changed manifests and ledgers (default: %(default)s s)",
    )
    serve.add_argument(
        "--workers",
        type=options.positive(int),
        default=1,
        metavar="N",
        help="processes sharing the port, each loading and reloading on its own "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--certfile", type=Path, metavar="PEM", help="serve HTTPS with this certificate chain"
    )
    serve.add_argument(
        "--keyfile", type=Path, metavar="PEM", help="its private key (if not in --certfile)"
    )
    serve.add_argument(
        "--allow-from",
        action="append",
        metavar="CIDR",
        help="answer /connect and /handoff only to these source networks (repeat, or "
        f"comma-separate; default: ${ALLOW_FROM}, else anyone)",
    )
    serve.add_argument(
        "--trusted-hops",
        type=_hops,
        metavar="N",
        help="proxies in front of serve that append to X-Forwarded-For: the caller is the "
        f"N-th address from its right (default: ${TRUSTED_HOPS}, else 0: the peer)",
    )
    serve.add_argument(
        "--public-metrics",
        action="store_true",
        help="serve /metrics without the token, for a scraper that cannot send one (the "
        "counts name rules and statuses, never a SID, a DID or a caller)",
    )
    serve.add_argument(
        "--log-decisions",
        choices=["all", "failures", "none"],
        default="all",
        help="the line per decision: every one, only those that are not routing as declared "
        "(no route, a trunk not in the ledger, a failed agents check), or none "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        type=options.positive(int),
        default=1000,
        metavar="N",
        help="open connections per worker; past it one is answered 503 and closed "
        "(default: %(default)s, lowered to fit the open-files limit)",
    )
    serve.add_argument(
        "--header-timeout",
        type=options.positive(float),
        default=10.0,
        metavar="S",
        help="seconds each request has to arrive complete, from the connection's start or "
        "the previous answer (default: %(default)s)",
    )
    serve.add_argument(
        "--keep-alive",
        type=options.positive(int),
        default=None,
        metavar="S",
        help=f"seconds an idle connection is kept open, at most --header-timeout (default: "
        f"{KEEP_ALIVE}, or --header-timeout when that is shorter)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=options.positive(int),
        default=30,
        metavar="S",
        help="on SIGTERM, seconds to finish requests in flight, accepting no new ones "
        "(default: %(default)s)",
    )
    # serve logs a line per decision
    serve.set_defaults(run=run_serve, chatty=lambda: True, unfinished="the service did not start")


KEEP_ALIVE = 5  # seconds an idle connection is kept, unless --header-timeout is shorter


def _reload_interval(text: str) -> float:
    value = float(options.positive(float)(text))
    if value < MIN_RELOAD_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_RELOAD_INTERVAL} s (looking more often only spends a "
            f"core), got {text}"
        )
    return value


def _hops(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 10, got {text}")
    return value


def run_serve(args: argparse.Namespace) -> int:
    from reconciler.routing import access  # noqa: PLC0415
    from reconciler.routing import service as serve  # noqa: PLC0415 (starlette and uvicorn load only to serve)
    from reconciler.routing.protocol import Limits  # noqa: PLC0415

    clock = None
    if args.now is not None:
        fixed = moment(args.now, "--at")
        clock = lambda: fixed  # noqa: E731 (a fixed clock, to try time rules)
    token = os.environ.get(TOKEN)
    hops = args.trusted_hops
    if hops is None:
        try:
            hops = _hops(os.environ.get(TRUSTED_HOPS, "0"))
        except argparse.ArgumentTypeError as error:
            raise ConfigError(f"{TRUSTED_HOPS} {error}") from None
    keep_alive = args.keep_alive
    if keep_alive is None:
        keep_alive = max(1, min(KEEP_ALIVE, int(args.header_timeout)))
    elif keep_alive > args.header_timeout:
        raise ConfigError(
            f"--keep-alive {args.keep_alive} is longer than --header-timeout "
            f"{args.header_timeout}: an idle connection must wait for its next request "
            "within the header timeout, so it would be closed at that instead; lower "
            "--keep-alive or raise --header-timeout"
        )
    allowed = access.networks(args.allow_from or [os.environ.get(ALLOW_FROM, "")])
    serve.run(
        Path(args.path),
        serve.Options(
            host=args.host,
            port=args.port,
            reload_interval=args.reload_interval,
            workers=args.workers,
            certfile=args.certfile,
            keyfile=args.keyfile,
            access=access.Access(
                token=None if token is None else access.check_token(token),
                allow=allowed,
                trusted_hops=hops,
                public_metrics=args.public_metrics,
            ),
            limits=Limits(max_connections=args.max_connections, header_timeout=args.header_timeout),
            keep_alive=keep_alive,
            graceful_timeout=args.graceful_timeout,
            log_decisions=args.log_decisions,
        ),
        clock=clock,
    )
    return EXIT_OK


__all__ = ["register", "run_serve"]
