"""``reconciler serve``: answer Exotel's Dynamic URL and handoff webhooks from the routes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import sandbox
from reconciler.cli import options
from reconciler.cli.common import EXIT_OK, moment

if TYPE_CHECKING:
    from reconciler.cli.options import Commands

MIN_RELOAD_INTERVAL = 0.1  # seconds: any shorter only spends a core looking at files


def register(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="answer Exotel's Dynamic URL and handoff webhooks from the routes: manifests",
        description=(
            "Serve GET /connect (the Connect applet's Dynamic URL), GET /handoff (the Passthru "
            "applet) and GET /healthz from the manifests' routes, resolving trunk names to SIDs "
            "through the ledger. Reloads when manifests or ledgers change, without a restart."
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
    # serve logs a line per decision
    serve.set_defaults(run=run_serve, chatty=lambda: True, unfinished="the service did not start")


def _reload_interval(text: str) -> float:
    value = float(options.positive(float)(text))
    if value < MIN_RELOAD_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_RELOAD_INTERVAL} s (looking more often only spends a "
            f"core), got {text}"
        )
    return value


def run_serve(args: argparse.Namespace) -> int:
    from reconciler.routing import service as serve  # noqa: PLC0415 (starlette and uvicorn load only to serve)

    clock = None
    if args.now is not None:
        fixed = moment(args.now, "--at")
        clock = lambda: fixed  # noqa: E731 (a fixed clock, to try time rules)
    serve.run(
        Path(args.path),
        host=args.host,
        port=args.port,
        reload_interval=args.reload_interval,
        clock=clock,
    )
    return EXIT_OK


__all__ = ["register", "run_serve"]
