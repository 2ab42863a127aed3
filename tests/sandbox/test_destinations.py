"""Destination-URI endpoints: the batch add with per-item results, list, change, remove."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandboxes import Api, TrunkApi, error, ok

IP = "44.248.146.11"


def add(trunk: TrunkApi, *destinations: Any) -> tuple[int, dict[str, Any]]:
    items = [d if isinstance(d, dict) else {"destination": d} for d in destinations]
    response = trunk.post("destination-uris", {"destinations": items})
    return response.status_code, response.json()


@pytest.fixture
def trunk(api: Api) -> TrunkApi:
    trunk = api.trunk(api.create_trunk())
    trunk.whitelist(IP)
    return trunk


def test_add_stores_with_a_sip_prefix(trunk: TrunkApi) -> None:
    status, document = add(trunk, f"{IP}:5061;transport=tls", "sip.company.com:5060;transport=tcp")
    assert status == 200
    assert document["http_code"] == 200
    assert document["metadata"] == {"total": 2, "success": 2, "failed": 0}
    stored = [item["data"] for item in document["response"]]
    assert [d["destination"] for d in stored] == [
        f"sip:{IP}:5061;transport=tls",
        "sip:sip.company.com:5060;transport=tcp",
    ]
    first = stored[0]
    assert list(first) == [
        "id",
        "destination",
        "date_created",
        "date_updated",
        "type",
        "priority",
        "weight",
        "trunk_sid",
    ]
    assert (first["type"], first["priority"], first["weight"]) == ("public", 0, 1)
    # Newest first.
    assert trunk.items("destination-uris") == stored[::-1]


def test_a_sip_prefix_is_not_added_twice_and_host_case_is_kept(trunk: TrunkApi) -> None:
    _, document = add(trunk, "sip:SIP.Company.com:5061;transport=tls")
    assert (
        document["response"][0]["data"]["destination"] == "sip:SIP.Company.com:5061;transport=tls"
    )


def test_priority_and_weight_may_be_set_at_creation(trunk: TrunkApi) -> None:
    _, document = add(
        trunk, {"destination": "sip.company.com:5061;transport=tls", "priority": 1, "weight": 7}
    )
    data = document["response"][0]["data"]
    assert (data["priority"], data["weight"]) == (1, 7)


def test_partial_failure_is_207_with_per_item_results(trunk: TrunkApi) -> None:
    status, document = add(
        trunk,
        "sip.company.com:5061;transport=tls",
        "13.126.40.7:5061;transport=tls",
        "-bad-.example:5061;transport=tls",
    )
    assert status == 207
    assert document["http_code"] == 207
    assert document["metadata"] == {"total": 3, "success": 1, "failed": 2}
    ok_item, not_whitelisted, bad_host = document["response"]
    assert ok_item["status"] == "success"
    for item, description in (
        (not_whitelisted, "Destination not whitelisted"),
        (bad_host, "Destination is not a valid Ip or Fqdn"),
    ):
        assert item == {
            "code": 400,
            "error_data": {
                "code": 1002,
                "message": "Invalid parameter",
                "description": description,
            },
            "status": "failure",
            "data": None,
        }
    assert len(trunk.items("destination-uris")) == 1


def test_all_failing_is_still_207(trunk: TrunkApi) -> None:
    status, document = add(trunk, "13.126.40.7:5061;transport=tls")
    assert status == 207
    assert document["metadata"] == {"total": 1, "success": 0, "failed": 1}


def test_an_ip_inside_a_whitelisted_network_is_whitelisted(trunk: TrunkApi) -> None:
    trunk.whitelist("13.126.40.0", 24)
    status, _ = add(trunk, "13.126.40.200:5061;transport=tls")
    assert status == 200
    status, _ = add(trunk, "13.126.41.1:5061;transport=tls")
    assert status == 207


def test_an_exact_duplicate_is_an_item_409(trunk: TrunkApi) -> None:
    add(trunk, "sip.company.com:5061;transport=tls")
    status, document = add(
        trunk, "sip:SIP.COMPANY.COM:5061;transport=tls", "sip.company.com:5060;transport=tcp"
    )
    assert status == 207
    duplicate, fresh = document["response"]
    assert (duplicate["code"], duplicate["error_data"]["code"]) == (409, 1008)
    assert fresh["status"] == "success"


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        (f"{IP}:5060;transport=udp", "udp is not supported"),
        (f"{IP}:5061", "must look like"),
        (f"{IP};transport=tls", "must look like"),
        (f"{IP}:0;transport=tls", "Port must be between"),
        (f"{IP}:65536;transport=tls", "Port must be between"),
        ("999.1.1.1:5061;transport=tls", "not a valid Ip or Fqdn"),
        ("localhost:5061;transport=tls", "not a valid Ip or Fqdn"),
        ("under_score.example.com:5061;transport=tls", "not a valid Ip or Fqdn"),
        ("sip.company.123:5061;transport=tls", "not a valid Ip or Fqdn"),
        ("sip.company.com:5061;transport=tls;lr", "must look like"),
    ],
)
def test_invalid_destinations_fail_per_item(
    trunk: TrunkApi, destination: str, fragment: str
) -> None:
    status, document = add(trunk, destination)
    assert status == 207
    item = document["response"][0]
    assert (item["code"], item["error_data"]["code"]) == (400, 1002)
    assert fragment in item["error_data"]["description"]


def test_missing_or_empty_batch_is_one_1001(trunk: TrunkApi) -> None:
    for body in ({}, {"destinations": []}):
        assert error(trunk.post("destination-uris", body))[:3] == (400, 400, 1001)


@pytest.mark.parametrize(
    "body",
    [
        {"destinations": "sip.company.com:5061;transport=tls"},
        {"destinations": ["sip.company.com:5061;transport=tls"]},
        {"destinations": [{"destination": 5}]},
        {"destinations": [{"destination": "a.example.com:5061;transport=tls", "priority": "1"}]},
    ],
)
def test_wrong_types_in_a_batch_are_one_1007(trunk: TrunkApi, body: dict[str, Any]) -> None:
    assert error(trunk.post("destination-uris", body))[:3] == (400, 400, 1007)


def test_item_without_destination_is_an_item_1001(trunk: TrunkApi) -> None:
    status, document = add(trunk, {"priority": 1})
    assert status == 207
    assert document["response"][0]["error_data"]["code"] == 1001


def test_put_changes_priority_and_weight(trunk: TrunkApi) -> None:
    _, document = add(trunk, "sip.company.com:5061;transport=tls")
    entry_id = document["response"][0]["data"]["id"]
    data = ok(trunk.put(f"destination-uris/{entry_id}", {"priority": 2}))
    assert (data["priority"], data["weight"]) == (2, 1)
    data = ok(trunk.put(f"destination-uris/{entry_id}", {"weight": 9}))
    assert (data["priority"], data["weight"]) == (2, 9)
    assert error(trunk.put(f"destination-uris/{entry_id}", {}))[2] == 1001
    assert error(trunk.put(f"destination-uris/{entry_id}", {"priority": -1}))[2] == 1002
    assert (
        error(trunk.put(f"destination-uris/{entry_id}", {"priority": 1, "weight": 70000}))[2]
        == 1002
    )
    assert error(trunk.put(f"destination-uris/{entry_id}", {"weight": "9"}))[2] == 1007
    assert error(trunk.put("destination-uris/4242", {"weight": 9}))[2] == 1000
    stored = trunk.items("destination-uris")[0]
    assert (stored["priority"], stored["weight"]) == (2, 9)


def test_delete_by_query_id(trunk: TrunkApi) -> None:
    _, document = add(trunk, "sip.company.com:5061;transport=tls")
    data = document["response"][0]["data"]
    assert ok(trunk.delete("destination-uris", params={"id": data["id"]})) == data
    assert trunk.items("destination-uris") == []
    assert error(trunk.delete("destination-uris", params={"id": data["id"]}))[2] == 1000


def test_scheme_port_and_transport_are_stored_canonically(trunk: TrunkApi) -> None:
    _, document = add(trunk, "SIP:Host.Example.com:05061;transport=TLS")
    assert (
        document["response"][0]["data"]["destination"] == "sip:Host.Example.com:5061;transport=tls"
    )
    status, document = add(trunk, "host.example.com:5061;transport=tls")
    assert status == 207
    assert document["response"][0]["error_data"]["code"] == 1008
