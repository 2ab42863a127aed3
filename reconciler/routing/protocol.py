"""uvicorn's HTTP protocols, with what a server on the call path needs against slow,
idle, malformed or too many clients.

Used by ``routing.service`` (``uvicorn.Config(http=guarded(limits))``). The parser is
httptools' (llhttp, in C: about 1.6 times the answers per core of h11's on loopback,
which is what keeps p99 under 10 ms at 50 concurrent callers), h11's where httptools is
not installed; both get the same defences. What uvicorn 0.55 does by itself, read in its
source (``uvicorn/protocols/http/h11_impl.py`` and ``httptools_impl.py``):

- ``timeout_keep_alive`` closes a connection idle *between* requests; its timer is armed
  only when a response completes (``on_response_complete``) and cancelled by any byte
  received (``data_received``). A connection that never sends a request, or sends its
  headers a byte a second, is held forever. Hence ``header_timeout`` here: every
  request, headers and body, must arrive complete within it, counted from the
  connection's start or the end of the previous answer.
- ``limit_concurrency`` answers 503 once that many connections *or* tasks exist, but only
  when a request arrives, with one warning per request, and idle connections still hold
  their file descriptors. Hence ``max_connections`` here: a connection over the limit is
  told 503 and closed when accepted, and one line says so (at most every 10 s).
- ``h11_max_incomplete_event_size`` (h11's default, 16 KiB) bounds a request's head with
  h11; httptools has no such bound, so ``MAX_HEAD`` here sets the same one. A malformed
  request is answered 400 by ``send_400_response``; but when the app is already
  answering its headers (a bad chunked body), uvicorn's 400 and then the app's answer
  meet in h11 and a 45-line "Exception in ASGI application" traceback is logged per
  request. Here the connection is closed instead, the app's answer dropped, and one
  throttled line logged.
- asyncio sets ``TCP_NODELAY`` on accepted sockets only when the listening socket was
  made with ``proto=IPPROTO_TCP`` (``asyncio/base_events.py``, ``_set_nodelay``, called
  from ``selector_events._SelectorSocketTransport.__init__``); uvicorn's own
  ``Config.bind_socket`` makes it so, a socket passed with ``sockets=[...]`` keeps what
  its maker chose. ``service.listen`` makes it so too, and each connection sets it again
  here, so no answer waits ~40 ms for Nagle's algorithm to meet the client's delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("reconciler.serve")
THROTTLE_SECONDS = 10.0
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n"
    b"retry-after: 1\r\n\r\n"
)


class Throttled:
    """A warning a hostile client cannot turn into a flood: the first at once, then at
    most one every ``every`` seconds, counting the ones in between."""

    def __init__(
        self, event: str, every: float = THROTTLE_SECONDS, count: Callable[[], None] | None = None
    ) -> None:
        self.event = event
        self.every = every
        self.count = count
        self._since = 0
        self._last = -every

    def __call__(self, **fields: Any) -> None:
        if self.count is not None:
            self.count()
        self._since += 1
        self.flush(**fields)

    def flush(self, **fields: Any) -> None:
        """Log what was counted since the last line, once ``every`` has passed: called
        with each event, and on a tick, so the end of a burst is told too."""
        now = time.monotonic()
        if self._since and now - self._last >= self.every:
            with contextlib.suppress(OSError, ValueError):  # a broken log stream is no error
                log.warning(self.event, times=self._since, within_s=self.every, **fields)
            self._last, self._since = now, 0


@dataclass
class Events:
    """What the protocol reports (a log line, throttled, and a counter each)."""

    refused: Throttled
    timed_out: Throttled
    client_error: Throttled
    out_of_files: Throttled

    def flush(self) -> None:
        for throttled in (self.refused, self.timed_out, self.client_error, self.out_of_files):
            throttled.flush()

    @classmethod
    def create(
        cls,
        refused: Callable[[], None] | None = None,
        timed_out: Callable[[], None] | None = None,
        client_error: Callable[[], None] | None = None,
    ) -> Events:
        return cls(
            Throttled("serve.connection_limit", count=refused),
            Throttled("serve.client_timeout", count=timed_out),
            Throttled("serve.client_error", count=client_error),
            Throttled("serve.out_of_file_descriptors"),
        )


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1000
    header_timeout: float = 10.0  # seconds for each request, headers and body, to arrive


EVENTS_KEY = "reconciler.events"  # where the app's lifespan state keeps its Events


MAX_HEAD = 16 * 1024  # bytes of request line and headers (h11's own default limit)

if TYPE_CHECKING:  # the mixin below is typed as the protocol it is mixed into
    _Base = H11Protocol
else:
    _Base = object


class _Guard(_Base):
    """What both parsers' protocols add: TCP_NODELAY, the connection limit, the request
    deadline and quiet client errors. ``limits`` is set on the class ``guarded`` makes."""

    limits: ClassVar[Limits]
    _deadline: asyncio.TimerHandle | None = None
    _head = 0  # bytes of the next request's head so far; -1 once its blank line is in
    _tail = b""  # the head's last bytes so far: its end may span two reads

    def _head_too_long(self, data: bytes) -> bool:
        """Count ``data`` towards the request's head, up to its blank line: the bytes
        after it are the body (a Passthru POST's form), which this limit is not for.
        Neither parser bounds a head that arrives whole (h11 bounds only incomplete
        data), so both count here."""
        if self._head < 0:
            return False
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._head += len(data)
            self._tail = seen[-3:]
        else:
            self._head += end + 4 - len(self._tail)
            if self._head <= MAX_HEAD:
                self._head, self._tail = -1, b""
        return self._head > MAX_HEAD

    def _request_in(self) -> None:
        """The whole request has arrived: the app's time now, and the next request's
        head is counted from here (not from the answer, which may come before the rest of
        a body the app did not wait for)."""
        self._disarm()
        self._head, self._tail = 0, b""

    @property
    def _events(self) -> Events:
        events: Events | None = self.app_state.get(EVENTS_KEY)
        if events is None:  # an app without the service's lifespan (never in serve)
            events = self.app_state[EVENTS_KEY] = Events.create()
        return events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        raw = transport.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.limits.max_connections:
            self._events.refused(limit=self.limits.max_connections)
            transport.write(REFUSAL)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._events.timed_out(seconds=self.limits.header_timeout)
            self.transport.close()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()  # the next request has header_timeout to arrive
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # The app is answering this request already: drop its answer, not a 400
            # into the middle of it (h11 would refuse the app's, loudly).
            self.cycle.disconnected = True
            self._client_error()
            return
        self._events.client_error()
        try:
            super().send_400_response(msg)
        except h11.ProtocolError:
            self.transport.close()

    def _client_error(self) -> None:
        self._events.client_error()
        self._disarm()
        self.transport.close()


class _GuardedH11(_Guard, H11Protocol):
    def data_received(self, data: bytes) -> None:
        if self._head_too_long(data):
            self._client_error()
            return
        super().data_received(data)

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except (h11.ProtocolError, RuntimeError):  # h11 in a state it cannot leave
            self._client_error()
            return
        if self.conn.their_state in {h11.DONE, h11.MUST_CLOSE, h11.CLOSED}:
            self._request_in()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:  # pragma: no cover (httptools is a dependency; h11 stands in)
        return None

    class GuardedHttpTools(_Guard, HttpToolsProtocol):  # type: ignore[misc]
        def data_received(self, data: bytes) -> None:
            if self._head_too_long(data):
                self._client_error()
                return
            try:
                super().data_received(data)
            except Exception:  # a client's bytes never make a traceback
                self._client_error()

        def on_message_complete(self) -> None:
            self._request_in()
            super().on_message_complete()

    return GuardedHttpTools


def guarded(limits: Limits, parser: str = "auto") -> type[asyncio.Protocol]:
    """The protocol class uvicorn creates per connection: httptools' parser (C, about
    1.6 times the requests per core of h11's) when it is installed or asked for, else
    h11's, with ``limits``."""
    base = _httptools_protocol() if parser in {"auto", "httptools"} else None
    if base is None and parser == "httptools":  # pragma: no cover
        raise RuntimeError("httptools is not installed")
    chosen = base or _GuardedH11
    return type(f"Guarded{chosen.__name__}", (chosen,), {"limits": limits})


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, events: Events) -> None:
    """asyncio's own logging of a client's doing, made one throttled line: ``accept()``
    out of file descriptors (a traceback a second otherwise), and a protocol callback
    failing on a client's bytes. Anything else goes to the handler there was."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        error = context.get("exception")
        if "accept" in message and isinstance(error, OSError):
            events.out_of_files(error=error.strerror or str(error))
            return
        if "data_received" in message or "eof_received" in message:
            events.client_error()
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
