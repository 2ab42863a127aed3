"""The client at its boundary, with a mock transport for answers the sandbox cannot give.

Everything the sandbox can produce is tested against it (test_plan*, test_apply*);
here: plain HTTP 409s, non-JSON bodies, timeouts on writes, Retry-After arithmetic.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import structlog

from reconciler.errors import (
    AuthFailed,
    Duplicate,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from reconciler.exotel.client import ExotelClient
from reconciler.exotel.gate import Gate, RetryPolicy

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(
    data: Any = None, *, code: int = 200, error: int | None = None, http: int = 200
) -> dict[str, Any]:
    failure = error is not None
    return {
        "request_id": "a" * 32,
        "method": "GET",
        "http_code": http,
        "response": {
            "code": code,
            "error_data": (
                {"code": error, "message": "m", "description": "said why"} if failure else None
            ),
            "status": "failure" if failure else "success",
            "data": None if failure else data,
        },
    }  # fmt: skip


def client(handler: Handler, *, sleeps: list[float] | None = None) -> ExotelClient:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    http = httpx.AsyncClient(base_url="http://exotel.test", transport=httpx.MockTransport(handler))
    return ExotelClient(
        account="prod", sid="ameyo5m", http=http, gate=Gate(), sleep=sleep, rng=random.Random(1)
    )


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, envelope(code=409, error=1008), Duplicate),
        (409, envelope(code=409, error=1008, http=409), Duplicate),  # the sample repo's form
        (409, {"message": "conflict"}, Duplicate),  # a bare 409, no envelope
        (404, envelope(code=404, error=1000, http=404), NotFound),
        (401, envelope(code=401, error=1010, http=401), AuthFailed),
        (400, envelope(code=400, error=1002, http=400), Invalid),
        (415, b"unsupported", Invalid),
    ],
)
def test_failures_map_to_the_error_tree(status: int, body: Any, kind: type[Exception]) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    api = client(lambda request: httpx.Response(status, content=content))
    with pytest.raises(kind) as raised:
        run(api.create_trunk("t", "ANY-ANY", "a.pstn.exotel.com"))
    assert raised.value.call.account == "prod"
    assert raised.value.call.path == "/v2/accounts/ameyo5m/trunks"


def test_a_success_without_the_envelope_is_a_server_error() -> None:
    api = client(lambda request: httpx.Response(200, content=b"<html>maintenance</html>"))
    with pytest.raises(ServerError, match="not Exotel's envelope"):
        run(api.list_trunks())


def test_reads_retry_5xx_with_backoff_then_give_up() -> None:
    sleeps: list[float] = []
    api = client(lambda request: httpx.Response(503, content=b"busy"), sleeps=sleeps)
    with pytest.raises(ServerError):
        run(api.list_trunks())
    assert api.calls == RetryPolicy().attempts
    assert len(sleeps) == RetryPolicy().attempts - 1
    # Full jitter: each wait is at most base * 2^(attempt-1), capped.
    assert all(0 <= wait <= 0.5 * 2**i for i, wait in enumerate(sleeps))


def test_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"response": []}),
        ]
    )
    api = client(lambda request: next(answers), sleeps=sleeps)
    assert run(api.list_trunks()) == []
    assert 3 <= sleeps[0] <= 3.5


def test_a_write_that_may_have_landed_is_never_retried_blindly() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    api = client(timeout)
    with pytest.raises(TransportError) as raised:
        run(api.create_trunk("t", "ANY-ANY", "a.pstn.exotel.com"))
    assert raised.value.maybe_committed is True
    assert api.calls == 1


def test_a_write_on_a_500_is_not_retried() -> None:
    api = client(lambda request: httpx.Response(500, json=envelope(code=500, error=500, http=500)))
    with pytest.raises(ServerError):
        run(api.create_trunk("t", "ANY-ANY", "a.pstn.exotel.com"))
    assert api.calls == 1


def test_a_write_refused_before_sending_is_retried() -> None:
    attempts = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=envelope({"trunk_sid": "trmum1x"}))

    api = client(flaky)
    assert run(api.create_trunk("t", "ANY-ANY", "a.pstn.exotel.com")).sid == "trmum1x"
    assert len(attempts) == 2


def test_a_rate_limited_write_is_retried_because_nothing_was_done() -> None:
    answers = iter([httpx.Response(429), httpx.Response(200, json=envelope({"id": "1"}))])
    api = client(lambda request: next(answers), sleeps=[])
    assert run(api.map_number("t", "+918040264208", "pstn")).id == "1"


def test_rate_limited_until_the_end_raises() -> None:
    api = client(lambda request: httpx.Response(429, headers={"Retry-After": "0"}), sleeps=[])
    with pytest.raises(RateLimited) as raised:
        run(api.list_trunks())
    assert raised.value.retry_after == 0


def test_pagination_and_a_list_without_metadata() -> None:
    second_page = "/v2/accounts/ameyo5m/trunks?offset=1&page_size=1"
    pages = {
        None: {
            "response": [{"status": "success", "data": {"id": "2"}}],
            "metadata": {"next_page_uri": second_page},
        },
        "1": {
            "response": [{"status": "success", "data": {"id": "1"}}],
            "metadata": {"next_page_uri": None},
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("offset")])

    assert run(client(handler).listing("/trunks")) == [{"id": "2"}, {"id": "1"}]
    empty = client(lambda request: httpx.Response(200, json={"response": []}))
    assert run(empty.list_trunks()) == []


def test_an_absolute_next_page_is_followed_on_the_same_host_only() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.params.get("offset") == "1":
            return httpx.Response(200, json={"response": [{"status": "success", "data": {}}]})
        nxt = "http://exotel.test/v2/accounts/ameyo5m/trunks?offset=1&page_size=1"
        if request.url.params.get("elsewhere"):
            nxt = "https://attacker.example/v2/accounts/ameyo5m/trunks?offset=1"
        page = {"response": [{"status": "success", "data": {}}], "metadata": {"next_page_uri": nxt}}
        return httpx.Response(200, json=page)

    assert len(run(client(handler).listing("/trunks"))) == 2
    assert len(run(client(handler).listing("/trunks", params={"elsewhere": 1}))) == 1
    assert all(url.startswith("http://exotel.test/") for url in seen)


def test_batch_answers_come_back_per_item() -> None:
    body = {
        "http_code": 207,
        "metadata": {"total": 2, "success": 1, "failed": 1},
        "response": [
            {"code": 200, "status": "success", "error_data": None, "data": {"id": "5"}},
            {"code": 409, "status": "failure", "data": None,
             "error_data": {"code": 1008, "message": "Duplicate resource", "description": "dup"}},
        ],
    }  # fmt: skip
    api = client(lambda request: httpx.Response(207, json=body))
    first, second = run(api.add_destinations("t", []))
    assert first.ok
    assert first.data == {"id": "5"}
    assert isinstance(second.error, Duplicate)


def test_the_gate_keeps_within_the_window() -> None:
    now = [0.0]

    async def fast_sleep(seconds: float) -> None:
        now[0] += seconds

    gate = Gate(per_minute=2, window=10.0, clock=lambda: now[0], sleep=fast_sleep)

    async def scenario() -> list[float]:
        admitted = []
        for _ in range(3):
            async with gate:
                admitted.append(now[0])
            now[0] += 1.0
        return admitted

    admitted = asyncio.run(scenario())
    assert admitted == [0.0, 1.0, 10.0]  # the third waits until the first leaves the window


def test_rate_limit_waits_are_said_not_silent() -> None:
    now = [0.0]

    async def fast_sleep(seconds: float) -> None:
        now[0] += seconds

    gate = Gate(per_minute=1, window=61.0, clock=lambda: now[0], sleep=fast_sleep, account="prod")

    async def scenario() -> None:
        for _ in range(2):
            async with gate:
                pass
        gate.pause(41)
        async with gate:
            pass

    with structlog.testing.capture_logs() as logs:
        asyncio.run(scenario())
    said = [entry["message"] for entry in logs if entry["log_level"] == "warning"]
    assert said == [  # each said before the wait, not after it
        "at the account's rate limit (1 a minute): waiting 61 s",
        "rate limited by Exotel: waiting 41 s",
        "at the account's rate limit (1 a minute): waiting 20 s",
    ]
