"""Control endpoints: reset, state, stats and faults, never authenticated."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.sandboxes import Api, Sandbox, running


def test_state_shows_every_trunk_with_its_children(sandbox: Sandbox, api: Api) -> None:
    sid = api.create_trunk()
    trunk = api.trunk(sid)
    trunk.map("+918040264208", "flow")
    trunk.whitelist("44.248.146.11")
    trunk.post(
        "settings", {"settings": [{"name": "trunk_external_alias", "value": "+918040264208"}]}
    )
    state = sandbox.state()
    [stored] = state["accounts"]["demo"]["trunks"]
    assert (stored["trunk_sid"], stored["trunk_name"]) == (sid, "blr_bot")
    assert [n["phone_number"] for n in stored["phone_numbers"]] == ["+918040264208"]
    assert [ip["ip"] for ip in stored["whitelisted_ips"]] == ["44.248.146.11"]
    assert stored["settings"][0]["value"] == "+918040264208"
    assert stored["destination_uris"] == stored["credentials"] == []


def test_stats_count_api_requests_by_route_template_and_status(sandbox: Sandbox, api: Api) -> None:
    sid = api.create_trunk()
    api.trunk(sid).get("phone-numbers")
    api.trunk(sid).get("phone-numbers")
    api.get("/nowhere")
    api.get("/trunks", auth=("bad", "creds"))
    assert sandbox.stats() == {
        "requests": 5,
        "by_route": {
            "POST /v2/accounts/{sid}/trunks": 1,
            "GET /v2/accounts/{sid}/trunks/{trunk_sid}/phone-numbers": 2,
            "GET (no route)": 1,
            "GET /v2/accounts/{sid}/trunks": 1,
        },
        "by_status": {"200": 3, "404": 1, "401": 1},
    }


def test_reset_is_as_if_just_started(sandbox: Sandbox, api: Api) -> None:
    first_sid = api.create_trunk()
    sandbox.faults({"path": "*", "fault": "error_500", "count": 5})
    sandbox.reset()
    assert sandbox.state()["accounts"]["demo"]["trunks"] == []
    assert sandbox.stats() == {"requests": 0, "by_route": {}, "by_status": {}}
    assert sandbox.control("GET", "faults") == {"rules": []}
    # Ids and (seeded) SIDs start over too.
    assert api.create_trunk() == first_sid
    assert api.trunk(first_sid).map("+918040264208")["id"] == "1"


def test_unknown_control_endpoint_is_a_json_404(sandbox: Sandbox) -> None:
    for method, path in (
        ("GET", "/_sandbox/nothing"),
        ("GET", "/_sandbox/reset"),
        ("GET", "/_sandbox"),
    ):
        response = sandbox.http.request(method, path, auth=None)
        assert response.status_code == 404
        assert response.json()["ok"] is False
        assert "POST /_sandbox/reset" in response.json()["endpoints"]


def test_control_needs_no_auth(sandbox: Sandbox) -> None:
    response = sandbox.http.post("/_sandbox/reset", auth=None)
    assert response.json() == {"ok": True}


def test_reset_while_a_request_is_in_flight(log_path: Path) -> None:
    with running("--latency-ms", "1500", log_path=log_path) as sandbox:
        answers: list[int] = []
        slow = threading.Thread(
            target=lambda: answers.append(Api(sandbox.http).get("/trunks").status_code)
        )
        slow.start()
        time.sleep(0.3)
        sandbox.reset()
        slow.join(10)
        assert answers == [200]
        # The request from before the reset counts in the stats it started with.
        assert sandbox.stats() == {"requests": 0, "by_route": {}, "by_status": {}}
        assert Api(sandbox.http).get("/trunks").status_code == 200
