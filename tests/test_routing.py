"""Routing decisions with a fixed clock: which route, which rule, and how slow agents end."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from reconciler.manifests.routes import RouteSpec
from reconciler.manifests.windows import IST, in_window
from reconciler.plan.routes import route_changes
from reconciler.routing.agents import ask as probe
from reconciler.routing.decide import Snapshot, connect, number

SIDS = {("demo", "bot"): "trdemo", ("other", "obot"): "trother"}


def route(did: str, account: str, trunk: str, **extra: object) -> RouteSpec:
    return RouteSpec.model_validate(
        {"did": did, "account": account, "default": {"trunk": trunk}, **extra}
    )


def trunk_of(snapshot: Snapshot, did: str) -> str | None:
    decision = connect(snapshot, {"CallTo": did}, datetime(2026, 11, 26, 12, tzinfo=IST))
    return decision.body.get("destination", {}).get("trunk")


def test_a_catch_all_never_crosses_accounts() -> None:
    snapshot = Snapshot.build(
        [route("*", "demo", "bot"), route("*", "other", "obot")],
        SIDS,
        "now",
        {"+918040264208": "demo", "+918040264300": "other"},
    )
    assert len(snapshot) == 2
    assert trunk_of(snapshot, "08040264208") == "trdemo"
    assert trunk_of(snapshot, "08040264300") == "trother"
    assert trunk_of(snapshot, "08040269999") is None  # declared nowhere, two catch-alls
    assert connect(snapshot, {}, datetime.now(IST)).status == 404  # no CallTo at all
    only_demo = Snapshot.build([route("*", "demo", "bot")], SIDS, "now", {"+918040264300": "other"})
    assert trunk_of(only_demo, "08040269999") == "trdemo"
    assert trunk_of(only_demo, "08040264300") is None


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2026, 11, 27, 23, 0, tzinfo=IST), True),  # Friday 23:00
        (datetime(2026, 11, 28, 1, 0, tzinfo=IST), True),  # Saturday 01:00: Friday's night
        (datetime(2026, 11, 27, 1, 0, tzinfo=IST), False),  # Friday 01:00: Thursday's night
        (datetime(2026, 11, 28, 2, 0, tzinfo=IST), False),  # the end is exclusive
        (datetime(2026, 11, 27, 21, 59, tzinfo=IST), False),
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_starts(
    when: datetime, expected: bool
) -> None:
    assert in_window("22:00-02:00", ("fri",), when) is expected


@pytest.mark.parametrize(
    "text",
    ["08040264208", "+918040264208", "918040264208", "8040264208", "00918040264208",
     "0918040264208", " +91 80 4026 4208"],
)  # fmt: skip
def test_every_form_of_a_number_is_read_as_e164(text: str) -> None:
    assert number(text) == "+918040264208"


@pytest.fixture
def trickling() -> Iterator[str]:
    """An HTTP server that answers 200 at once, then one body byte every 250 ms."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
                for _ in range(20):
                    if stop.is_set():
                        break
                    connection.sendall(b"x")
                    time.sleep(0.25)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/agents"
    stop.set()
    thread.join(5)
    listener.close()


def test_the_agents_timeout_bounds_the_whole_exchange(trickling: str) -> None:
    started = time.monotonic()
    assert asyncio.run(probe(trickling, timeout=0.3)) is None  # the fallback decides
    assert time.monotonic() - started < 2  # not 20 reads of 250 ms each


def test_route_changes_are_told_field_by_field() -> None:
    before = {
        "rules": [{"when": {"hours": "09:00-18:00"}, "trunk": "cc"}],
        "default": {"trunk": "bot"},
    }
    after = {
        "rules": [{"when": {"hours": "10:00-19:00"}, "trunk": "cc"}, {"when": {}, "trunk": "x"}],
        "default": {"trunk": "bot"},
        "handoff": {"otherwise": 302},
    }
    assert route_changes(before, after) == [
        "rules[0].when.hours 09:00-18:00 -> 10:00-19:00",
        "+ rules[1]",
        "+ handoff",
    ]
