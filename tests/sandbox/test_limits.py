"""Exotel's per-account limits: 200 requests a minute (strict sliding window), 50 in flight."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from reconciler.sandbox.limits import Admission, Refusal, Ticket
from tests.sandboxes import AUTH, Api, error, running


def admitted(admission: Admission, account: str, now: float) -> Ticket:
    ticket = admission.admit(account, now)
    assert isinstance(ticket, Ticket), ticket
    return ticket


def refused(admission: Admission, account: str, now: float) -> Refusal:
    refusal = admission.admit(account, now)
    assert isinstance(refusal, Refusal), refusal
    return refusal


def test_window_admits_up_to_the_limit_then_says_when_to_retry() -> None:
    admission = Admission(per_minute=3)
    for now in (0.0, 1.0, 2.0):
        admission.leave(admitted(admission, "a", now))
    # Four arrivals are in the window, refused one included: two must leave for room.
    assert refused(admission, "a", 3.0).retry_after == 58
    admitted(admission, "a", 61.0)  # waiting as told is enough
    admitted(admission, "b", 3.0)  # another account has its own window


def test_window_slides() -> None:
    admission = Admission(per_minute=2, window=10.0)
    admitted(admission, "a", 0.0)
    admitted(admission, "a", 5.0)
    refused(admission, "a", 9.9)
    # At 10.0 the first arrival has left; the refused one at 9.9 still counts.
    assert refused(admission, "a", 10.0).retry_after == 10  # once 9.9 and 10.0 have left
    admitted(admission, "a", 20.0)


def test_zero_means_no_rate_limit_but_in_flight_still_counts() -> None:
    admission = Admission(per_minute=0, max_in_flight=2)
    first = admitted(admission, "a", 0.0)
    admitted(admission, "a", 0.0)
    assert refused(admission, "a", 0.0).retry_after == 1
    admission.leave(first)
    admitted(admission, "a", 0.0)


def test_a_ticket_from_before_a_reset_does_not_free_a_new_slot() -> None:
    admission = Admission(per_minute=0, max_in_flight=1)
    old = admitted(admission, "a", 0.0)
    admission.reset()
    admitted(admission, "a", 0.0)
    admission.leave(old)
    refused(admission, "a", 0.0)


def test_429_then_recovery_over_http(log_path: Path) -> None:
    with running("--rate-limit", "5", "--rate-window", "2", log_path=log_path) as sandbox:
        api = Api(sandbox.http)
        for _ in range(10):  # refused for auth: not counted
            assert api.get("/trunks", auth=("demo_key", "wrong")).status_code == 401
        for _ in range(5):
            assert api.get("/trunks").status_code == 200
        refused = api.get("/trunks")
        assert error(refused)[:3] == (429, 429, 429)
        assert refused.json()["response"]["error_data"]["message"] == "Too Many Requests"
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        sandbox.stats()  # control calls are never limited
        sandbox.state()
        time.sleep(retry_after)
        assert api.get("/trunks").status_code == 200
        assert sandbox.stats()["by_status"] == {"401": 10, "200": 6, "429": 1}


def test_reset_empties_the_windows(log_path: Path) -> None:
    with running("--rate-limit", "2", log_path=log_path) as sandbox:
        api = Api(sandbox.http)
        api.get("/trunks")
        api.get("/trunks")
        assert api.get("/trunks").status_code == 429
        sandbox.reset()
        assert api.get("/trunks").status_code == 200


def test_the_51st_request_in_flight_is_refused(log_path: Path) -> None:
    with running("--rate-limit", "0", "--latency-ms", "3000", log_path=log_path) as sandbox:

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(
                base_url=sandbox.url, auth=AUTH, limits=limits, timeout=20
            ) as client:
                responses = await asyncio.gather(
                    *(client.get("/v2/accounts/demo/trunks") for _ in range(51))
                )
                return sorted(r.status_code for r in responses)

        statuses = asyncio.run(burst())
        assert statuses.count(200) == 50
        assert statuses.count(429) == 1
