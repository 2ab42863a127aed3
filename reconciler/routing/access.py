"""Who may ask ``reconciler serve``: a shared token, and optionally source addresses.

Used by ``routing.service`` as an ASGI middleware in front of every route. With a token
(``RECONCILER_SERVE_TOKEN``), a request must carry it, either

- as the password of HTTP basic auth, any user (``Authorization: Basic ...``, which a
  client sends for a URL written ``https://user:TOKEN@host/connect``), or
- as a path segment: ``/t/TOKEN/connect`` (the form every client can send: the token is
  part of the URL's path, which Exotel's applets pass on as they are given it).

Compared in constant time (``hmac.compare_digest``). A request without it gets a bare
401: no body, no route data. ``/healthz`` and ``/readyz`` stay open to probes (anonymous
callers get no details that name files); ``/metrics`` needs the token like the rest,
unless ``--public-metrics`` (its counts name rules and statuses, never a SID, a DID or
a caller).

An allow-list of source networks (``--allow-from``) answers 403 to anyone else on the
call path (``/connect``, ``/handoff``). Behind proxies, ``--trusted-hops N`` takes the
caller's address from ``X-Forwarded-For``: the N-th address from the right, the one the
nearest trusted proxy saw (the entries left of it are whatever the client wrote).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TOKEN_PREFIX = "/t/"  # noqa: S105 (where the token goes in a path, not a token)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes: anonymous gets no file names
CALLS = ("/connect", "/handoff")  # what Exotel's applets ask
# Served with a trailing slash too (a redirect would drop /t/TOKEN/); the allow-list
# guards them all.
CALL_PATHS = frozenset(call + end for call in CALLS for end in ("", "/"))
MIN_TOKEN_LENGTH = 16
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved: the same in a path and userinfo


def check_token(token: str) -> bytes:
    """The token as bytes, or a ConfigError saying what is wrong with it. Whitespace at
    either end is dropped: a token read from a file (a Kubernetes Secret made with
    ``--from-file``) keeps the file's last newline, and no token character is a space."""
    token = token.strip()
    if not token:
        raise ConfigError(
            "RECONCILER_SERVE_TOKEN is set but empty: refusing to serve without the token "
            "the deployment meant to require (unset it to serve without one)"
        )
    if len(token) < MIN_TOKEN_LENGTH or not TOKEN_CHARACTERS.fullmatch(token):
        raise ConfigError(
            f"RECONCILER_SERVE_TOKEN must be at least {MIN_TOKEN_LENGTH} characters of "
            "A-Z a-z 0-9 . _ ~ - (the same in a URL's path and its user:password), for "
            "example from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token.encode()


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """``--allow-from`` values (addresses or CIDR networks, comma-separated) as networks."""
    found: list[Network] = []
    for text in texts:
        for item in filter(None, (part.strip() for part in text.split(","))):
            try:
                found.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"--allow-from: {item!r} is not an address or a network like 203.0.113.0/24"
                ) from None
    return tuple(found)


@dataclass(frozen=True)
class Access:
    token: bytes | None = None
    allow: tuple[Network, ...] = ()
    trusted_hops: int = 0  # proxies in front whose X-Forwarded-For entries are trusted
    public_metrics: bool = False  # /metrics without the token (a scraper that cannot send it)

    def open_path(self, path: str) -> bool:
        return path in OPEN_PATHS or (self.public_metrics and path == "/metrics")

    def token_matches(self, presented: bytes) -> bool:
        return self.token is not None and hmac.compare_digest(presented, self.token)

    def basic_password(self, headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
        for name, value in headers:
            if name == b"authorization":
                scheme, _, encoded = value.strip().partition(b" ")
                if scheme.lower() != b"basic":
                    return None
                try:
                    decoded = base64.b64decode(encoded.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return None
                return decoded.partition(b":")[2]
        return None

    def source(self, scope: Scope) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The caller's address: the peer's, or the one the nearest trusted proxy saw."""
        client = scope.get("client")
        text = client[0] if client else ""
        if self.trusted_hops:
            forwarded = [
                part.strip()
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
                for part in value.decode("latin-1").split(",")
            ]
            if len(forwarded) < self.trusted_hops:
                return None  # fewer hops than the proxies that should have added theirs
            text = forwarded[-self.trusted_hops]
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            return None

    def allowed(self, scope: Scope) -> bool:
        if not self.allow:
            return True
        address = self.source(scope)
        return address is not None and any(address in network for network in self.allow)


class Guard:
    """ASGI middleware: the token (path or basic auth) and the allow-list, before the app.

    Sets ``scope["state"]["authenticated"]`` for the app (``/healthz`` tells an
    authenticated caller what failed to load, file names included)."""

    def __init__(self, app: App, access: Access, on_denied: Callable[[int, Scope], None]) -> None:
        self.app = app
        self.access = access
        self.on_denied = on_denied

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = self.access
        path: str = scope["path"]
        authenticated = False
        if path.startswith(TOKEN_PREFIX):
            presented, _, rest = path[len(TOKEN_PREFIX) :].partition("/")
            if not access.token_matches(presented.encode()):
                await self._deny(401, scope, send)
                return
            authenticated = True
            path = "/" + rest
            scope = dict(scope, path=path, raw_path=path.encode())
        elif access.token is not None:
            password = access.basic_password(scope["headers"])
            authenticated = password is not None and access.token_matches(password)
        if access.token is not None and not authenticated and not access.open_path(path):
            await self._deny(401, scope, send)
            return
        if path in CALL_PATHS and not access.allowed(scope):
            await self._deny(403, scope, send)
            return
        scope.setdefault("state", {})["authenticated"] = authenticated
        await self.app(scope, receive, send)

    async def _deny(self, status: int, scope: Scope, send: Send) -> None:
        """A bare answer: the status and nothing else (401 names the scheme, as HTTP asks)."""
        headers = [(b"content-length", b"0")]
        if status == 401:
            headers.append((b"www-authenticate", b'Basic realm="reconciler serve"'))
        self.on_denied(status, scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
