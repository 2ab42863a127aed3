"""The flow a DID's calls run through: the Connect applet (a trunk, or a Dynamic URL with
its fallback) and, after a bot, the Passthru applet's handoff (docs/sandbox.md, "Calls").

Set with ``PUT /_sandbox/flows/{did}``; called by ``inbound``. Exotel's side of both
contracts, from its documents (docs/exotel-api.md, "Calls"):

* the Dynamic URL is asked with a GET, the call's details as query parameters
  (``CallSid``, ``CallFrom``, ``CallTo``, ``Direction=incoming``, ``Created``,
  ``StartTime``, ``CurrentTime``; numbers as Exotel writes them, ``0`` and ten digits)
  and the header ``Exotel-Version: 1.0``; a Fallback URL is asked when the primary fails.
  Its answer names ``destination.trunk`` and may add ``custom_params`` (at most 3 SIP
  headers, 200 bytes, no ``Exotel-`` or ``Veeno-`` names), ``record`` and
  ``recording_channels``;
* the Passthru URL is asked with a GET (``CallSid``, ``CallFrom``, ``CallTo``,
  ``Direction``, ``DialCallDuration``, ``StartTime``, ``CurrentTime``, ``CallType``: the
  names of Exotel's current article; an older one said ``From`` and ``To``); 200 takes
  the applet's first branch (here: the Connect applet of the agents), 302 or 404 hangs up.

Exotel documents no timeout for either; the sandbox gives each ``timeout_s`` (default 5)
and treats an answer that breaks the rules above as a failure of that URL, so mistakes
show here before they reach production.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp

IST = timezone(timedelta(hours=5, minutes=30))
DEFAULT_TIMEOUT_S = 5.0
MAX_HEADERS = 3
MAX_PARAMS_BYTES = 200
RESERVED = ("exotel-", "veeno-")
TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 3261 25.1: a header name


class FlowError(ValueError):
    """A flow the sandbox refuses; the message says what would be right."""


@dataclass(frozen=True)
class Connect:
    """A Connect applet: a fixed trunk, or a Dynamic URL (and its fallback)."""

    trunk: str | None = None
    url: str | None = None
    fallback_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def document(self) -> dict[str, Any]:
        return {
            "trunk": self.trunk,
            "url": shown_url(self.url),
            "fallback_url": shown_url(self.fallback_url),
            "timeout_s": self.timeout_s,
        }


@dataclass(frozen=True)
class Passthru:
    """The handoff after the bot: its webhook, and the agents' Connect applet."""

    url: str
    then: Connect
    timeout_s: float = DEFAULT_TIMEOUT_S

    def document(self) -> dict[str, Any]:
        return {
            "url": shown_url(self.url),
            "then": self.then.document(),
            "timeout_s": self.timeout_s,
        }


@dataclass(frozen=True)
class Flow:
    connect: Connect
    passthru: Passthru | None = None

    def document(self) -> dict[str, Any]:
        return {
            "connect": self.connect.document(),
            "passthru": self.passthru.document() if self.passthru else None,
        }


def shown_url(url: str | None) -> str | None:
    """A URL as records and logs show it: without the password a URL may carry."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _seconds(value: object, name: str) -> float:
    if value is None:
        return DEFAULT_TIMEOUT_S
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise FlowError(f"{name} must be a number of seconds above 0, to 60")
    return float(value)


def _url(value: object, name: str) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        valid = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        if parts is not None:
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        valid = False
    if not valid:
        raise FlowError(f"{name} must be an http or https URL with a host (and a valid port)")
    return str(value)


def _connect(body: object, where: str) -> Connect:
    if not isinstance(body, dict):
        raise FlowError(f'{where} must be an object: {{"url": ...}} or {{"trunk": SID}}')
    unknown = set(body) - {"trunk", "url", "fallback_url", "timeout_s"}
    if unknown:
        raise FlowError(f"{where}: unknown field(s) {sorted(unknown)}")
    trunk, url = body.get("trunk"), _url(body.get("url"), f"{where}.url")
    if (trunk is None) == (url is None):
        raise FlowError(f"{where} needs exactly one of trunk (a SID) and url (a Dynamic URL)")
    if trunk is not None and (not isinstance(trunk, str) or not trunk):
        raise FlowError(f"{where}.trunk must be a trunk SID (a string), like trmum1...")
    return Connect(
        trunk=str(trunk) if trunk is not None else None,
        url=url,
        fallback_url=_url(body.get("fallback_url"), f"{where}.fallback_url"),
        timeout_s=_seconds(body.get("timeout_s"), f"{where}.timeout_s"),
    )


def flow(body: object) -> Flow:
    """``{"connect": {...}, "passthru": {"url", "then": {...}}}`` -> a flow, or FlowError."""
    if not isinstance(body, dict):
        raise FlowError('send a JSON object, like {"connect": {"url": "http://.../connect"}}')
    unknown = set(body) - {"account", "connect", "passthru"}
    if unknown:
        raise FlowError(f"unknown field(s) {sorted(unknown)}: account, connect, passthru")
    passthru = None
    raw = body.get("passthru")
    if raw is not None:
        if not isinstance(raw, dict) or set(raw) - {"url", "then", "timeout_s"}:
            raise FlowError('passthru must be {"url": ..., "then": {...}, "timeout_s": ...}')
        url = _url(raw.get("url"), "passthru.url")
        if url is None:
            raise FlowError("passthru.url is required")
        passthru = Passthru(
            url,
            _connect(raw.get("then"), "passthru.then"),
            _seconds(raw.get("timeout_s"), "passthru.timeout_s"),
        )
    return Flow(_connect(body.get("connect"), "connect"), passthru)


def national(number: str) -> str:
    """An Indian number as Exotel writes it in webhooks: ``0`` and ten digits."""
    return "0" + number[3:] if number.startswith("+91") and len(number) == 13 else number


def stamp(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Asked:
    """One exchange with a customer's URL, as the call record keeps it."""

    kind: str  # dynamic_url | fallback_url | passthru
    url: str
    query: dict[str, str]
    status: int | None = None
    answer: Any = None
    error: str | None = None
    took_ms: int = 0
    problems: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": shown_url(self.url),
            "query": self.query,
            "status": self.status,
            "answer": self.answer,
            "error": self.error,
            "problems": self.problems,
            "took_ms": self.took_ms,
        }


async def ask(
    session: aiohttp.ClientSession, kind: str, url: str, query: dict[str, str], timeout: float
) -> Asked:
    """GET ``url`` as Exotel does; the answer read as JSON when it is JSON."""
    asked = Asked(kind, url, query)
    started = time.monotonic()
    try:
        async with session.get(
            url,
            params=query,
            headers={"Exotel-Version": "1.0", "User-Agent": "reconciler-sandbox (Exotel in a box)"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            asked.status = response.status
            text = await response.text()
            try:
                asked.answer = json.loads(text) if text else None
            except ValueError:
                asked.answer = text[:200]
    except TimeoutError:
        asked.error = f"no answer within {timeout:g} s"
    except aiohttp.ClientConnectorError as exc:
        why = exc.os_error.strerror or str(exc.os_error)
        asked.error = f"cannot connect to {exc.host}:{exc.port} ({why})"
    except aiohttp.ClientError as exc:  # its text may quote the URL: never its password
        asked.error = (str(exc) or type(exc).__name__).replace(url, str(shown_url(url)))
    asked.took_ms = int((time.monotonic() - started) * 1000)
    return asked


@dataclass(frozen=True)
class Destination:
    """What a Connect applet's answer says to do."""

    trunk: str
    headers: tuple[tuple[str, str], ...] = ()
    record: bool = False
    recording_channels: str | None = None


def read_answer(asked: Asked) -> Destination | None:
    """The Dynamic URL's answer, checked; None (with ``asked.problems``) when it fails."""
    if asked.error is not None:
        return None
    if asked.status != 200:
        asked.problems.append(f"answered {asked.status}, not 200")
        return None
    answer = asked.answer
    if not isinstance(answer, dict):
        asked.problems.append("the answer is not a JSON object")
        return None
    destination = answer.get("destination") if isinstance(answer, dict) else None
    trunk = destination.get("trunk") if isinstance(destination, dict) else None
    if not isinstance(trunk, str) or not trunk:
        asked.problems.append("the answer has no destination.trunk")
        return None
    assert isinstance(answer, dict)
    raw = answer.get("custom_params") or ""
    headers: list[tuple[str, str]] = []
    if not isinstance(raw, str):
        asked.problems.append("custom_params must be a string like X-A=1&X-B=2")
    else:
        if len(raw.encode()) > MAX_PARAMS_BYTES:
            asked.problems.append(
                f"custom_params is {len(raw.encode())} bytes: at most {MAX_PARAMS_BYTES}"
            )
        headers = parse_qsl(raw, keep_blank_values=True)
        if len(headers) > MAX_HEADERS:
            asked.problems.append(f"{len(headers)} custom headers: at most {MAX_HEADERS}")
        for name, value in headers:
            shown = repr(name[:40])
            if not TOKEN.fullmatch(name):
                asked.problems.append(f"header name {shown} is not a SIP token")
            elif name.lower().startswith(RESERVED):
                asked.problems.append(f"header {name}: Exotel- and Veeno- names are Exotel's")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                asked.problems.append(f"header {shown}: its value holds control characters")
    if asked.problems:
        return None
    channels = answer.get("recording_channels")
    return Destination(
        trunk,
        tuple(headers),
        bool(answer.get("record")),
        channels if isinstance(channels, str) else None,
    )


def _now(created: datetime, started: float) -> datetime:
    """The call's clock: its start (``at``, or when it began) plus the time since."""
    return created + timedelta(seconds=time.monotonic() - started)


def _common(sid: str, caller: str, did: str, created: datetime, started: float) -> dict[str, str]:
    return {
        "CallSid": sid,
        "CallFrom": national(caller),
        "CallTo": national(did),
        "Direction": "incoming",
        "StartTime": stamp(created),
        "CurrentTime": stamp(_now(created, started)),
    }


def connect_query(
    sid: str, caller: str, did: str, created: datetime, started: float
) -> dict[str, str]:
    return {**_common(sid, caller, did, created, started), "Created": stamp(created)}


def passthru_query(
    sid: str, caller: str, did: str, created: datetime, started: float, *, talked_s: float
) -> dict[str, str]:
    return {
        **_common(sid, caller, did, created, started),
        "DialCallDuration": str(round(talked_s)),
        "CallType": "call-attempt",
    }


class Flows:
    """The flows set per (account, DID)."""

    def __init__(self) -> None:
        self.flows: dict[tuple[str, str], Flow] = {}

    def get(self, account: str, did: str) -> Flow | None:
        return self.flows.get((account, did))

    def set(self, account: str, did: str, value: Flow) -> None:
        self.flows[(account, did)] = value

    def clear(self) -> None:
        self.flows.clear()
