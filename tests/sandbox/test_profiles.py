"""Profile ``minimal`` serves the strongly evidenced calls and answers the rest 404/1000."""

from __future__ import annotations

import pytest

from reconciler.sandbox.endpoints import ROUTES
from tests.sandboxes import Api, error, ok

DID = "+918040264208"
IP = "44.248.146.11"


def concrete(template: str, trunk_sid: str, child_id: str = "1") -> str:
    path = template.replace("{sid}", "demo").replace("{trunk_sid}", trunk_sid)
    return path.replace("{id}", child_id).removeprefix("/v2/accounts/demo")


MISSING_IN_MINIMAL = sorted(route.key for route in ROUTES if not route.minimal)


def test_the_minimal_rows_are_the_documented_ones() -> None:
    # docs/exotel-api.md section 3, rows marked "no".
    assert (
        sorted(
            [
                "GET /v2/accounts/{sid}/trunks",
                "PUT /v2/accounts/{sid}/trunks/{trunk_sid}",
                "DELETE /v2/accounts/{sid}/trunks/{trunk_sid}/phone-numbers",
                "GET /v2/accounts/{sid}/trunk-maps",
                "PUT /v2/accounts/{sid}/trunks/{trunk_sid}/whitelisted-ips/{id}",
                "DELETE /v2/accounts/{sid}/trunks/{trunk_sid}/whitelisted-ips",
                "PUT /v2/accounts/{sid}/trunks/{trunk_sid}/destination-uris/{id}",
                "DELETE /v2/accounts/{sid}/trunks/{trunk_sid}/destination-uris",
                "PUT /v2/accounts/{sid}/trunks/{trunk_sid}/credentials/{id}",
                "GET /v2/accounts/{sid}/trunks/{trunk_sid}/settings",
                "DELETE /v2/accounts/{sid}/trunks/{trunk_sid}/settings",
            ]
        )
        == MISSING_IN_MINIMAL
    )


@pytest.mark.parametrize("key", MISSING_IN_MINIMAL)
def test_minimal_answers_manage_calls_404(minimal_api: Api, key: str) -> None:
    sid = minimal_api.create_trunk()
    method, template = key.split(" ", 1)
    response = minimal_api.client.request(
        method, minimal_api.root + concrete(template, sid), json={} if method == "PUT" else None
    )
    assert error(response)[:3] == (404, 404, 1000)


@pytest.mark.parametrize("key", MISSING_IN_MINIMAL)
def test_full_serves_the_same_calls(api: Api, key: str) -> None:
    sid = api.create_trunk()
    method, template = key.split(" ", 1)
    response = api.client.request(
        method, api.root + concrete(template, sid), json={} if method == "PUT" else None
    )
    # Reached the handler: any answer but "no such route".
    assert "No route" not in str(response.json())


def test_minimal_walks_the_whole_setup_flow(minimal_api: Api) -> None:
    api = minimal_api
    sid = api.create_trunk()
    trunk = api.trunk(sid)
    mapped = trunk.map(DID)
    assert ok(trunk.put(f"phone-numbers/{mapped['id']}", {"phone_number": DID, "mode": "flow"}))
    trunk.whitelist(IP)
    response = trunk.post(
        "destination-uris", {"destinations": [{"destination": f"{IP}:5061;transport=tls"}]}
    )
    assert response.status_code == 200
    response = trunk.post(
        "settings", {"settings": [{"name": "trunk_external_alias", "value": DID}]}
    )
    assert response.status_code == 200
    credential = ok(trunk.post("credentials", {"user_name": "bot", "password": "pw"}))
    assert trunk.items("credentials") == [credential]
    assert ok(trunk.delete("credentials", params={"id": credential["id"]}))
    assert len(trunk.items("phone-numbers")) == len(trunk.items("whitelisted-ips")) == 1
    assert len(trunk.items("destination-uris")) == 1
    assert ok(api.delete("/trunks", params={"trunk_sid": sid}))["trunk_sid"] == sid
