"""``reconciler sandbox``: a faithful, controllable emulator of Exotel's vSIP API.

A separate program inside this package: it imports nothing from the rest of
``reconciler`` (an import-linter contract enforces it), so a bug in shared code can
never hide itself from the tests that drive the reconciler against it.

Entry points: :func:`add_arguments` and :func:`run`, used by ``reconciler sandbox`` and
``python -m reconciler.sandbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from reconciler.sandbox.config import (
    DEFAULT_ACCOUNT,
    DEFAULT_HOLD_SECONDS,
    PROFILES,
    AccountSpec,
    Config,
    parse_account,
)
from reconciler.sandbox.limits import DEFAULT_PER_MINUTE, WINDOW_SECONDS
from reconciler.sandbox.persist import StateFileError


def _account(text: str) -> AccountSpec:
    try:
        return parse_account(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value

    return parse


def port_number(text: str) -> int:
    """A TCP port for argparse: 0 (pick a free one) to 65535."""
    value = int(non_negative(int)(text))
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = non_negative(float)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return float(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8765,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="full",
        help="capability profile: 'minimal' answers the docs-only manage calls 404 (default: full)",
    )
    parser.add_argument(
        "--account",
        dest="accounts",
        action="append",
        type=_account,
        metavar="SID:KEY:TOKEN",
        help=f"an account and its API key and token; repeatable (default: {DEFAULT_ACCOUNT})",
    )
    parser.add_argument(
        "--latency-ms",
        type=non_negative(float),
        default=0.0,
        metavar="MS",
        help="delay added to every API response, in milliseconds (default: 0)",
    )
    parser.add_argument(
        "--rate-limit",
        type=non_negative(int),
        default=DEFAULT_PER_MINUTE,
        metavar="N",
        help="requests per minute per account, 0 for no limit (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-window",
        type=_positive_float,
        default=WINDOW_SECONDS,
        metavar="S",
        help="length of the rate-limit window in seconds; shorten it to test recovery quickly "
        "(default: %(default)g, Exotel's minute)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="persist every change to FILE atomically, reload it on start (default: memory only)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="make trunk SIDs, request ids and fault draws reproducible",
    )
    parser.add_argument(
        "--hold-seconds",
        type=non_negative(float),
        default=DEFAULT_HOLD_SECONDS,
        metavar="S",
        help="longest a timeout_after_commit fault holds a response (default: %(default)s)",
    )
    parser.add_argument(
        "--certfile", type=Path, metavar="FILE", help="serve HTTPS with this certificate (PEM)"
    )
    parser.add_argument(
        "--keyfile", type=Path, metavar="FILE", help="private key for --certfile (PEM)"
    )


def config_from(args: argparse.Namespace) -> Config:
    return Config(
        host=args.host,
        port=args.port,
        profile=args.profile,
        accounts=tuple(args.accounts or [parse_account(DEFAULT_ACCOUNT)]),
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        state_file=args.state,
        seed=args.seed,
        hold_seconds=args.hold_seconds,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 1 when it cannot start."""
    from reconciler.sandbox import server  # noqa: PLC0415 (aiohttp loads only to serve)

    if args.keyfile and not args.certfile:
        print("reconciler sandbox: --keyfile needs --certfile", file=sys.stderr)
        return 1
    config = config_from(args)
    server.configure_logging()

    def ready(url: str) -> None:
        print(f"listening on {url}", flush=True)

    try:
        asyncio.run(server.serve(config, on_ready=ready))
    except (StateFileError, server.StartupError) as exc:
        print(f"reconciler sandbox: {exc}", file=sys.stderr)
        return 1
    return 0
