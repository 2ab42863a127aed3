"""The sandbox's settings, from its command line (``reconciler sandbox --help``).

Called by the sandbox's entry point, which parses arguments into a :class:`Config`,
and by its server. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.sandbox.limits import DEFAULT_IN_FLIGHT, DEFAULT_PER_MINUTE, WINDOW_SECONDS

PROFILES = ("full", "minimal")
DEFAULT_ACCOUNT = "demo:demo_key:demo_token"
DEFAULT_HOLD_SECONDS = 30.0
MAX_BODY_BYTES = 1024 * 1024  # 413 above 1 MiB (docs/exotel-api.md section 6a)
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class AccountSpec:
    sid: str
    api_key: str
    api_token: str = field(repr=False)


def parse_account(text: str) -> AccountSpec:
    """``SID:KEY:TOKEN``; the token may itself contain colons."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"expected SID:KEY:TOKEN, got {len(parts)} part(s)")
    sid, key, token = parts
    if not _SID.fullmatch(sid):
        raise ValueError(f"account SID {sid!r} must be letters, digits, '_' or '-'")
    return AccountSpec(sid, key, token)


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8765
    profile: str = "full"
    accounts: tuple[AccountSpec, ...] = (parse_account(DEFAULT_ACCOUNT),)
    latency_ms: float = 0.0
    rate_limit: int = DEFAULT_PER_MINUTE
    rate_window: float = WINDOW_SECONDS
    max_in_flight: int = DEFAULT_IN_FLIGHT
    state_file: Path | None = None
    seed: int | None = None
    hold_seconds: float = DEFAULT_HOLD_SECONDS
    certfile: Path | None = None
    keyfile: Path | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    # The SIP side (docs/sandbox.md, "Calls"): off unless a SIP port is given.
    sip_port: int | None = None
    sip_tls_port: int | None = None
    resolve: tuple[tuple[str, int, str], ...] = ()  # --resolve HOST:PORT:ADDRESS
    connect_to: tuple[tuple[str, int, str, int], ...] = ()  # --connect-to H:P:ADDRESS:PORT
    peers: tuple[tuple[str, str], ...] = ()  # --peer LOCAL=PUBLIC
    sip_ca: Path | None = None
    answer_timeout: float = 5.0
    ring_timeout: float = 45.0
    # LiveKit's SIP API (docs/sandbox.md, "LiveKit"): API key -> secret; LiveKit's dev pair.
    livekit: tuple[tuple[str, str], ...] = (("devkey", "secret"),)

    @property
    def sip(self) -> bool:
        return self.sip_port is not None or self.sip_tls_port is not None

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"
