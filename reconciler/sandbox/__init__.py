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
import ipaddress
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


def _resolve(text: str) -> tuple[str, int, str]:
    """``HOST:PORT:ADDRESS``, as curl's --resolve."""
    host, _, rest = text.partition(":")
    port, _, address = rest.partition(":")
    address = address.strip("[]")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        address = ""
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or not address:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT:ADDRESS with ADDRESS an IP address, like "
            f"sbc.example.com:5061:127.0.0.1, not {text!r}"
        )
    return host, int(port), address


def _connect_to(text: str) -> tuple[str, int, str, int]:
    """``HOST:PORT:ADDRESS:PORT2``, as curl's --connect-to."""
    parts = text.split(":")
    ports = [part for index, part in enumerate(parts) if index in (1, 3)]
    if (
        len(parts) != 4
        or not all(parts)
        or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports)
    ):
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT:ADDRESS:PORT2 with ADDRESS an IP address, like "
            f"sbc.example.com:5061:127.0.0.1:40123, not {text!r}"
        )
    return parts[0], int(parts[1]), parts[2], int(parts[3])


def _livekit(text: str) -> tuple[str, str]:
    key, colon, secret = text.partition(":")
    if not key or not colon or not secret:
        raise argparse.ArgumentTypeError(f"expected KEY:SECRET, like devkey:secret, not {text!r}")
    return key, secret


def _peer(text: str) -> tuple[str, str]:
    """``LOCAL=PUBLIC``: two IPv4 addresses."""
    local, equals, public = text.partition("=")
    try:
        ipaddress.IPv4Address(local)
        if not ipaddress.IPv4Address(public).is_global:
            raise argparse.ArgumentTypeError(
                f"--peer {text}: {public} is not a public address, and only public ones can be "
                "whitelisted; stand for one like 44.0.1.1"
            )
    except ValueError:
        equals = ""
    if not equals:
        raise argparse.ArgumentTypeError(
            f"expected LOCAL=PUBLIC, two IPv4 addresses like 127.0.0.2=44.0.1.1, not {text!r}"
        )
    return local, public


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
    parser.add_argument(
        "--livekit",
        action="append",
        type=_livekit,
        metavar="KEY:SECRET",
        help="also serve LiveKit's SIP API (/twirp/livekit.SIP/...) to this API key and "
        "secret; repeatable (default: devkey:secret, LiveKit's development pair)",
    )
    sip = parser.add_argument_group(
        "the SIP side (Exotel in a box: calls through what was applied; docs/sandbox.md)"
    )
    sip.add_argument(
        "--sip-port",
        type=port_number,
        metavar="PORT",
        help="take and place SIP calls over TCP on PORT (0 picks a free one); off by default",
    )
    sip.add_argument(
        "--sip-tls-port",
        type=port_number,
        metavar="PORT",
        help="SIP over TLS on PORT, with the --certfile certificate",
    )
    sip.add_argument(
        "--resolve",
        action="append",
        default=[],
        type=_resolve,
        metavar="HOST:PORT:ADDRESS",
        help="reach destination HOST:PORT at ADDRESS, as curl does (repeatable): point a "
        "trunk's destinations at a local SBC (an IP destination too: a test affordance)",
    )
    sip.add_argument(
        "--connect-to",
        action="append",
        default=[],
        type=_connect_to,
        metavar="HOST:PORT:ADDRESS:PORT2",
        help="reach destination HOST:PORT at ADDRESS:PORT2, as curl does (repeatable): a "
        "trunk's destination on a local SBC's port",
    )
    sip.add_argument(
        "--peer",
        action="append",
        default=[],
        type=_peer,
        metavar="LOCAL=PUBLIC",
        help="a test affordance: calls from LOCAL (a loopback alias, like 127.0.0.2) count "
        "as coming from PUBLIC (a whitelisted address, like 44.0.1.1); repeatable",
    )
    sip.add_argument(
        "--sip-ca",
        type=Path,
        metavar="FILE",
        help="verify partners' TLS certificates against FILE (PEM) instead of the system's",
    )
    sip.add_argument(
        "--answer-timeout",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="a destination that sends nothing for S seconds is skipped for the next "
        "(default: %(default)s)",
    )
    sip.add_argument(
        "--ring-timeout",
        type=_positive_float,
        default=45.0,
        metavar="S",
        help="a call ringing S seconds without an answer is cancelled: no-answer "
        "(default: %(default)s, Exotel's max_ringing_duration example)",
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
        sip_port=args.sip_port,
        sip_tls_port=args.sip_tls_port,
        resolve=tuple(args.resolve),
        connect_to=tuple(args.connect_to),
        livekit=tuple(args.livekit or [("devkey", "secret")]),
        peers=tuple(args.peer),
        sip_ca=args.sip_ca,
        answer_timeout=args.answer_timeout,
        ring_timeout=args.ring_timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 1 when it cannot start."""
    from reconciler.sandbox import server  # noqa: PLC0415 (aiohttp loads only to serve)

    if args.keyfile and not args.certfile:
        print("reconciler sandbox: --keyfile needs --certfile", file=sys.stderr)
        return 1
    if args.sip_ca is not None and not args.sip_ca.is_file():
        print(
            f"reconciler sandbox: --sip-ca {args.sip_ca}: no such file (give a PEM file of "
            "CA certificates)",
            file=sys.stderr,
        )
        return 1
    if args.sip_tls_port is not None and not args.certfile:
        print(
            "reconciler sandbox: --sip-tls-port needs --certfile (and --keyfile)",
            file=sys.stderr,
        )
        return 1
    config = config_from(args)
    server.configure_logging()

    def ready(url: str) -> None:
        said = "sip listening on" if url.startswith("sip:") else "listening on"
        print(f"{said} {url}", flush=True)

    try:
        asyncio.run(server.serve(config, on_ready=ready))
    except (StateFileError, server.StartupError) as exc:
        print(f"reconciler sandbox: {exc}", file=sys.stderr)
        return 1
    return 0
