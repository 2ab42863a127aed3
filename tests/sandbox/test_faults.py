"""Injected faults: error_500, rate_limit, timeout_after_commit, drop_connection."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.sandboxes import Api, Sandbox, error, running

TRUNKS = "/v2/accounts/demo/trunks"
BODY = {"trunk_name": "blr_bot", "nso_code": "ANY-ANY", "domain_name": "demo.pstn.exotel.com"}


def trunk_names(sandbox: Sandbox) -> list[str]:
    return [t["trunk_name"] for t in sandbox.state()["accounts"]["demo"]["trunks"]]


def test_error_500_does_nothing(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults({"method": "POST", "path": TRUNKS, "fault": "error_500", "count": 1})
    assert error(api.post("/trunks", BODY)) == (500, 500, 500, "Internal Server Error")
    assert trunk_names(sandbox) == []
    assert api.post("/trunks", BODY).status_code == 200  # the count is spent
    assert trunk_names(sandbox) == ["blr_bot"]


def test_rate_limit_with_and_without_retry_after(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults(
        {"path": TRUNKS, "fault": "rate_limit", "count": 1},
        {"path": TRUNKS, "fault": "rate_limit", "count": 1, "retry_after": False},
        {"path": TRUNKS, "fault": "rate_limit", "count": 1, "retry_after": 7},
    )
    first, second, third = (api.get("/trunks") for _ in range(3))
    assert error(first)[:3] == (429, 429, 429)
    assert first.headers["Retry-After"] == "1"
    assert error(second)[:3] == (429, 429, 429)
    assert "Retry-After" not in second.headers
    assert third.headers["Retry-After"] == "7"
    assert api.get("/trunks").status_code == 200


def test_drop_connection_closes_without_an_answer_and_does_nothing(
    sandbox: Sandbox, api: Api
) -> None:
    sandbox.faults({"method": "POST", "path": "*/trunks", "fault": "drop_connection", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        api.post("/trunks", BODY)
    assert trunk_names(sandbox) == []
    assert sandbox.stats()["by_status"] == {"dropped": 1}


def test_timeout_after_commit_carries_the_change_out(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults({"method": "POST", "path": TRUNKS, "fault": "timeout_after_commit", "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        api.post("/trunks", BODY, timeout=0.5)
    assert trunk_names(sandbox) == ["blr_bot"]
    # The client gave up; the sandbox noticed and let go of the held request.
    deadline = time.monotonic() + 5
    while sandbox.stats()["by_status"].get("held") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.stats()["by_status"] == {"held": 1}


def test_held_response_ends_after_hold_seconds(log_path: Path) -> None:
    with running("--hold-seconds", "0.5", log_path=log_path) as sandbox:
        sandbox.faults({"path": "*", "fault": "timeout_after_commit", "count": 1})
        api = Api(sandbox.http)
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("/trunks", BODY, timeout=10)
        assert time.monotonic() - started < 5
        assert trunk_names(sandbox) == ["blr_bot"]


def test_count_goes_down_only_when_the_rule_fires(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults({"method": "POST", "path": TRUNKS, "fault": "error_500", "count": 2})
    assert api.get("/trunks").status_code == 200  # method does not match: not spent
    assert sandbox.control("GET", "faults")["rules"][0]["count"] == 2
    assert api.post("/trunks", BODY).status_code == 500
    assert api.post("/trunks", BODY).status_code == 500
    assert api.post("/trunks", BODY).status_code == 200
    assert sandbox.control("GET", "faults")["rules"][0]["count"] == 0


def test_first_matching_rule_wins_and_globs_cross_slashes(sandbox: Sandbox, api: Api) -> None:
    sid = api.create_trunk()
    sandbox.faults(
        {"path": "/v2/*/whitelisted-ips", "fault": "error_500", "count": 1},
        {"method": "*", "path": "*", "fault": "rate_limit", "count": 1},
    )
    trunk = api.trunk(sid)
    assert trunk.get("whitelisted-ips").status_code == 500
    assert trunk.get("whitelisted-ips").status_code == 429
    assert trunk.get("whitelisted-ips").status_code == 200


def test_the_query_is_not_part_of_the_path(sandbox: Sandbox, api: Api) -> None:
    sid = api.create_trunk()
    sandbox.faults({"method": "DELETE", "path": TRUNKS, "fault": "error_500", "count": 1})
    assert api.delete("/trunks", params={"trunk_sid": sid}).status_code == 500


def test_probability_is_reproducible_with_the_seed(sandbox: Sandbox, api: Api) -> None:
    rule = {"method": "GET", "path": "*", "fault": "error_500", "probability": 0.5}

    def pattern() -> list[int]:
        sandbox.faults(rule)
        return [api.get("/trunks").status_code for _ in range(30)]

    first = pattern()
    assert first == pattern()  # replacing the rules re-seeds the draw
    assert 0 < first.count(500) < 30


def test_control_calls_are_never_faulted(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults({"method": "*", "path": "*", "fault": "drop_connection", "count": 100})
    assert sandbox.stats()["requests"] == 0
    assert sandbox.state()["accounts"]["demo"]["trunks"] == []
    sandbox.faults()
    assert api.get("/trunks").status_code == 200


def test_unauthenticated_requests_are_not_faulted(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults({"path": "*", "fault": "error_500", "count": 1})
    assert api.get("/trunks", auth=("x", "y")).status_code == 401
    assert api.get("/trunks").status_code == 500


@pytest.mark.parametrize(
    "rules",
    [
        {"fault": "error_500"},
        [{"fault": "explode", "count": 1}],
        [{"fault": "error_500"}],
        [{"fault": "error_500", "count": 1, "probability": 0.5}],
        [{"fault": "error_500", "count": 0}],
        [{"fault": "error_500", "probability": 1.5}],
        [{"fault": "error_500", "count": 1, "colour": "red"}],
        [{"fault": "rate_limit", "count": 1, "retry_after": "soon"}],
        ["error_500"],
    ],
)
def test_bad_rules_are_refused_and_change_nothing(
    sandbox: Sandbox, api: Api, rules: object
) -> None:
    sandbox.faults({"path": "*", "fault": "error_500", "count": 1})
    response = sandbox.http.post("/_sandbox/faults", json=rules)
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert len(sandbox.control("GET", "faults")["rules"]) == 1


def test_rules_need_no_content_type(sandbox: Sandbox, api: Api) -> None:
    response = sandbox.http.post(
        "/_sandbox/faults",
        content=b'[{"path": "*", "fault": "error_500", "count": 1}]',
        headers={"Content-Type": "text/plain"},
    )
    assert response.json() == {"ok": True}
    assert api.get("/trunks").status_code == 500


def test_a_probability_rule_that_draws_no_gives_later_rules_no_chance(
    sandbox: Sandbox, api: Api
) -> None:
    sandbox.faults(
        {"path": TRUNKS, "fault": "error_500", "probability": 0.5},
        {"path": TRUNKS, "fault": "rate_limit", "count": 100},
    )
    statuses = {api.get("/trunks").status_code for _ in range(30)}
    assert statuses == {200, 500}


def test_a_spent_count_rule_lets_later_rules_match(sandbox: Sandbox, api: Api) -> None:
    sandbox.faults(
        {"path": TRUNKS, "fault": "error_500", "count": 1},
        {"path": TRUNKS, "fault": "rate_limit", "count": 1},
    )
    assert [api.get("/trunks").status_code for _ in range(3)] == [500, 429, 200]


def test_retry_after_belongs_to_rate_limit_rules(sandbox: Sandbox) -> None:
    rules = [{"fault": "error_500", "count": 1, "retry_after": False}]
    assert sandbox.http.post("/_sandbox/faults", json=rules).status_code == 400
