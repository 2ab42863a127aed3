"""``reconciler serve`` over loopback HTTP: Exotel-shaped requests, a fixed clock, reloads."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from reconciler import render
from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from reconciler.manifests.windows import IST
from reconciler.routing import decide as routing_decide
from reconciler.routing import service
from reconciler.routing.agents import Agents
from reconciler.routing.service import create_app
from reconciler.routing.snapshot import Loader
from tests.estate import apply, plan, write
from tests.sandboxes import Api, Sandbox

SID_BOT, SID_CC, SID_NEW = "trmum1bot" + "0" * 19, "trmum1cc" + "0" * 20, "trmum1new" + "0" * 19
MANIFEST = """\
accounts:
  demo:
    sid: demo
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
trunks:
  - name: bot
    account: demo
    phone_numbers: ["+918040264208"]
  - name: cc
    account: demo
    phone_numbers: ["+912247788100"]
routes:
  - did: "+918040264208"
    account: demo
    rules:
      - when:
          caller_prefixes: ["+9198"]
          hours: "09:00-18:00"
          weekdays: [mon, tue, wed, thu, fri]
        trunk: cc
        custom_params: {X-Tenant: acme, X-Queue: vip}
        record: true
        recording_channels: dual
    default:
      trunk: bot
    handoff:
      hours: "09:00-18:00"
      weekdays: [mon, tue, wed, thu, fri]
      agents: {available: true}
      otherwise: 302
  - did: "+912247788100"
    account: demo
    default: {trunk: cc, fetch_after_attempt: true}
    handoff:
      agents: {url: "http://127.0.0.1:9/agents", timeout_ms: 200, fallback: false}
      otherwise: 404
"""
THURSDAY_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=IST)


class Clock:
    def __init__(self) -> None:
        self.now = THURSDAY_NOON

    def __call__(self) -> datetime:
        return self.now


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Clock]]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFEST)
    ledger = Ledger("demo", "demo", {"bot": TrunkEntry(SID_BOT), "cc": TrunkEntry(SID_CC)})
    ledgers.write(folder / "state" / "demo.json", ledger)
    clock = Clock()
    port = free_port()
    config = uvicorn.Config(
        create_app(folder, clock=clock, reload_interval=0.1),
        host="127.0.0.1", port=port, log_level="error", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", folder, clock
    server.should_exit = True
    thread.join(5)


def get(url: str, path: str, **query: str) -> httpx.Response:
    return httpx.get(url + path, params={"CallSid": "abc123", "Direction": "incoming", **query})


def test_a_rule_matches_with_headers_and_recording(served: tuple[str, Path, Clock]) -> None:
    url, _, _ = served
    response = get(url, "/connect", CallFrom="09876543210", CallTo="08040264208")
    assert response.status_code == 200
    assert response.json() == {
        "fetch_after_attempt": False,
        "destination": {"trunk": SID_CC},
        "custom_params": "X-Tenant=acme&X-Queue=vip",
        "record": True,
        "recording_channels": "dual",
    }


@pytest.mark.parametrize(
    ("caller", "when"),
    [
        ("09123456789", THURSDAY_NOON),  # another caller prefix
        ("09876543210", datetime(2026, 11, 26, 19, 0, tzinfo=IST)),  # after hours
        ("09876543210", datetime(2026, 11, 28, 12, 0, tzinfo=IST)),  # a Saturday
    ],
)
def test_otherwise_the_default(
    served: tuple[str, Path, Clock], caller: str, when: datetime
) -> None:
    url, _, clock = served
    clock.now = when
    response = get(url, "/connect", CallFrom=caller, CallTo="+918040264208")
    assert response.json() == {
        "fetch_after_attempt": False,
        "destination": {"trunk": SID_BOT},
        "record": False,
        "recording_channels": "single",
    }


def test_unknown_numbers_and_unknown_trunks_are_failures_not_errors(
    served: tuple[str, Path, Clock],
) -> None:
    url, folder, _ = served
    unknown = get(url, "/connect", CallFrom="0999", CallTo="0111111111")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no route for this number"})
    ledgers.write(
        folder / "state" / "demo.json", Ledger("demo", "demo", {"cc": TrunkEntry(SID_CC)})
    )
    deadline = time.monotonic() + 5
    while (
        get(url, "/connect", CallTo="08040264208").status_code == 200
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    missing = get(url, "/connect", CallTo="08040264208")
    assert missing.status_code == 503
    assert "not in the ledger yet" in missing.json()["error"]


def test_a_replaced_trunk_is_picked_up_without_a_restart(served: tuple[str, Path, Clock]) -> None:
    url, folder, _ = served
    assert get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_BOT
    replaced = Ledger("demo", "demo", {"bot": TrunkEntry(SID_NEW), "cc": TrunkEntry(SID_CC)})
    ledgers.write(folder / "state" / "demo.json", replaced)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_NEW:
            break
        time.sleep(0.05)
    assert get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_NEW
    # A broken edit is not served: the last good snapshot stays.
    (folder / "all.yaml").write_text(MANIFEST.replace("trunk: bot", "trunk: nowhere"))
    time.sleep(0.5)
    assert get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_NEW
    health = httpx.get(url + "/healthz")
    assert (health.status_code, health.json()["ok"], health.json()["stale"]) == (200, True, True)
    assert "trunk 'nowhere' is not declared" in health.json()["problem"]
    # A ledger that vanishes for a moment (a checkout, a deploy) keeps the SIDs served,
    # and says so: stale while it is missing, without a path to an anonymous caller.
    (folder / "all.yaml").write_text(MANIFEST)
    (folder / "state" / "demo.json").unlink()
    wait_until(lambda: "ledger(s) missing" in httpx.get(url + "/healthz").json().get("problem", ""))
    health = httpx.get(url + "/healthz").json()
    assert (health["ok"], health["stale"]) == (True, True)
    assert str(folder) not in health["problem"]
    assert "demo.json" not in health["problem"]
    assert get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_NEW
    # A ledger that is not text is refused, and watching goes on.
    (folder / "state" / "demo.json").write_bytes(b"\xff\xfe")
    wait_until(lambda: "not UTF-8" in httpx.get(url + "/healthz").json().get("problem", ""))
    ledgers.write(
        folder / "state" / "demo.json",
        Ledger("demo", "demo", {"bot": TrunkEntry(SID_BOT), "cc": TrunkEntry(SID_CC)}),
    )
    wait_until(lambda: not httpx.get(url + "/healthz").json()["stale"])
    assert get(url, "/connect", CallTo="08040264208").json()["destination"]["trunk"] == SID_BOT


def wait_until(condition: Any, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_handoff_in_and_out_of_hours(served: tuple[str, Path, Clock]) -> None:
    url, _, clock = served
    assert get(url, "/handoff", CallTo="08040264208").json() == {"result": "agent"}
    clock.now = datetime(2026, 11, 26, 20, 0, tzinfo=IST)
    closed = get(url, "/handoff", CallTo="08040264208")
    assert (closed.status_code, closed.json()["reason"]) == (302, "outside business hours")


def test_handoff_asks_agents_and_falls_back(served: tuple[str, Path, Clock]) -> None:
    url, _, _ = served
    response = get(url, "/handoff", CallTo="02247788100")  # the agents URL does not answer
    assert (response.status_code, response.json()["reason"]) == (404, "no agent available")


def test_the_decision_log_tells_a_failed_agents_check_from_a_no(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(MANIFEST)
    loader = Loader(tmp_path)
    assert loader.reload(), loader.problem
    query = {"CallTo": "02247788100"}
    asked = routing_decide.handoff(loader.snapshot, query, THURSDAY_NOON)

    async def ask() -> routing_decide.Decision:
        agents = Agents()
        agents.open()
        try:
            return await service._ask_agents(loader.snapshot, query, asked, agents)
        finally:
            await agents.close()

    answer = asyncio.run(ask())
    assert answer.rule == "no-agents:fallback"  # the URL failed: the fallback said no


def test_healthz(served: tuple[str, Path, Clock]) -> None:
    url, _, _ = served
    health = httpx.get(url + "/healthz").json()
    assert (health["ok"], health["stale"], health["routes"], health["trunks"]) == (
        True,
        False,
        2,
        2,
    )


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["CallSid", "CallFrom", "CallTo", "Direction", "x", "CallTo[]"]),
        st.text(max_size=30),
        max_size=5,
    ),
    path=st.sampled_from(["/connect", "/handoff", "/healthz"]),
)
def test_no_query_string_makes_a_500(
    served: tuple[str, Path, Clock], query: dict[str, Any], path: str
) -> None:
    url, _, _ = served
    response = httpx.get(url + path, params=query)
    assert response.status_code in {200, 302, 404, 503}
    assert isinstance(response.json(), dict)


def test_plan_shows_route_changes_and_apply_records_them(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    route = 'routes:\n  - did: "+918040264208"\n    account: demo\n    default: {trunk: bot}\n'
    folder = write(tmp_path, '- name: bot\n  account: demo\n  phone_numbers: ["+918040264208"]\n')
    (folder / "routes.yaml").write_text(route)
    first = plan(folder, sandbox)
    [recorded] = [a for a in first.actions if a.resource == "route"]
    assert (recorded.address, recorded.symbol) == ("demo/route/+918040264208", "+")
    assert "deployed to reconciler serve" in recorded.reason
    assert "no Exotel API call" in recorded.reason
    assert apply(folder, sandbox).converged
    assert plan(folder, sandbox).actions == ()
    (folder / "routes.yaml").write_text(
        route.replace("default: {trunk: bot}", "default: {trunk: bot, record: true}")
    )
    [changed] = plan(folder, sandbox).actions
    assert (changed.symbol, changed.operation) == ("~", "record_route")
    # Field by field, against the route as last applied (the ledger keeps it).
    assert (changed.after or {})["changes"] == ["default.record False -> True"]
    assert "route changed: default.record False -> True" in render.text(plan(folder, sandbox))
    (folder / "routes.yaml").unlink()
    [removed] = plan(folder, sandbox).actions
    assert removed.symbol == "-"


def test_the_serve_command(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFEST)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "serve.log").open("w"),
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"serving routes on http://127.0.0.1:{port}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert health["routes"] == 2
        assert health["trunks"] == 0  # no ledger yet: routes answer 503 until apply
        answer = httpx.get(f"http://127.0.0.1:{port}/connect", params={"CallTo": "08040264208"})
        assert answer.status_code == 503
    finally:
        process.terminate()
        process.wait(timeout=10)
    decisions = [
        json.loads(line)
        for line in (tmp_path / "serve.log").read_text().splitlines()
        if "serve.decision" in line
    ]
    assert [(d["did"], d["rule"], d["status"]) for d in decisions] == [
        ("+918040264208", "default:unknown-trunk", 503)
    ]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "all.yaml").write_text(MANIFEST.replace("trunk: bot", "trunk: nowhere"))
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", str(broken), "--port", str(port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "trunk 'nowhere' is not declared in account demo" in result.stderr
    assert result.stderr.count("trunk 'nowhere' is not declared") == 1  # said once
    assert "the service did not start" in result.stderr
    assert "nothing was sent to Exotel" not in result.stderr  # serve never talks to Exotel
    assert result.stdout == ""  # never "serving" on files that do not load


def test_serve_binds_before_it_says_so_and_answers_at_a_chosen_time(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(MANIFEST)
    ledgers.write(
        tmp_path / "state" / "demo.json",
        Ledger("demo", "demo", {"bot": TrunkEntry(SID_BOT), "cc": TrunkEntry(SID_CC)}),
    )
    command = [sys.executable, "-m", "reconciler", "serve", str(tmp_path), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--now", "2026-11-26T12:00"],  # a Thursday noon, Asia/Kolkata
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving routes on http://127.0.0.1:")
        port = int(line.split(":")[2].split()[0])  # the port it bound, not 0
        inside = httpx.get(
            f"http://127.0.0.1:{port}/connect",
            params={"CallTo": "08040264208", "CallFrom": "09876543210"},
        ).json()
        assert inside["destination"] == {"trunk": SID_CC}  # business hours at --now
        # The same port again: a clear error, exit 1 (not 3, "refused"), nothing served.
        busy = subprocess.run(
            [*command[:-1], str(port)], capture_output=True, text=True, timeout=30, check=False
        )
        assert busy.returncode == 1
        assert f"cannot serve on 127.0.0.1:{port}" in busy.stderr
        assert busy.stdout == ""
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_ledgers_at_their_own_path_and_renames_are_followed(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = MANIFEST.replace(
        "    api_token: ${EXOTEL_API_TOKEN}\n",
        "    api_token: ${EXOTEL_API_TOKEN}\n    ledger: ledgers/demo.json\n",
    ).replace("  - name: bot\n", "  - name: voicebot\n    renamed_from: bot\n")
    (folder / "all.yaml").write_text(manifest.replace("trunk: bot", "trunk: voicebot"))
    outside = folder / "ledgers" / "demo.json"
    ledgers.write(outside, Ledger("demo", "demo", {"bot": TrunkEntry(SID_BOT)}))
    loader = Loader(folder)
    assert loader.reload(), loader.problem
    # Renamed in the manifests, not yet applied: served under the ledger's old name.
    assert loader.snapshot.sids[("demo", "voicebot")] == SID_BOT
    ledgers.write(outside, Ledger("demo", "demo", {"voicebot": TrunkEntry(SID_NEW)}))
    assert loader.reload()  # the ledger at its own path is watched
    assert loader.snapshot.sids[("demo", "voicebot")] == SID_NEW
    assert not loader.reload()  # nothing changed since


def test_an_empty_checkout_never_replaces_the_routes_served(tmp_path: Path) -> None:
    """As apply's rail: a checkout that drops the routes must not turn every call away."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFEST)
    loader = Loader(folder)
    assert loader.reload()
    assert len(loader.snapshot) == 2
    time.sleep(0.01)
    (folder / "all.yaml").write_text(MANIFEST.split("routes:", maxsplit=1)[0])  # no routes left
    assert not loader.reload()
    assert len(loader.snapshot) == 2  # the last good routes keep serving
    assert "serve 0 route(s) where 2 were served: not swapped in" in loader.problem
    app_health = create_app(folder, loader=loader)
    with TestClient(app_health) as client:
        health = client.get("/healthz")
    assert health.status_code == 200  # still serving: keep the replica
    assert health.json()["ok"] is False  # but not OK: alert on it
    # And serve refuses to start on manifests with no routes at all.
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", "0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "declares no routes: nothing to serve" in result.stderr


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf", "0.0001"])
def test_a_reload_interval_that_would_busy_loop_is_a_usage_error(
    tmp_path: Path, interval: str
) -> None:
    command = [sys.executable, "-m", "reconciler", "serve", str(tmp_path), "--port", "0"]
    result = subprocess.run(
        [*command, "--reload-interval", interval],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1  # a usage error, as every other one
    assert "argument --reload-interval: must " in result.stderr
    assert "serving" not in result.stdout
