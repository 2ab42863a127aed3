"""Lists: newest first, ``offset``/``page_size`` pages and a ``next_page_uri`` chain."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandboxes import Api, TrunkApi, error


@pytest.fixture
def trunk(api: Api) -> TrunkApi:
    return api.trunk(api.create_trunk())


def whitelist_many(trunk: TrunkApi, count: int) -> list[dict[str, Any]]:
    return [trunk.whitelist(f"44.248.{i // 250}.{i % 250 + 1}") for i in range(count)]


def test_empty_list_has_no_metadata(trunk: TrunkApi) -> None:
    document = trunk.get("whitelisted-ips").json()
    assert document["response"] == []
    assert "metadata" not in document
    assert document["http_code"] == 200


def test_default_page_is_50_and_the_chain_reaches_every_item(trunk: TrunkApi, api: Api) -> None:
    created = whitelist_many(trunk, 230)
    seen: list[str] = []
    pages = 0
    document = trunk.get("whitelisted-ips").json()
    base = f"{api.root}/trunks/{trunk.sid}/whitelisted-ips"
    assert document["metadata"] == {
        "page_size": 50,
        "first_page_uri": f"{base}?offset=0&page_size=50",
        "prev_page_uri": None,
        "next_page_uri": f"{base}?offset=50&page_size=50",
    }
    while True:
        pages += 1
        seen += [item["data"]["id"] for item in document["response"]]
        next_uri = document["metadata"]["next_page_uri"]
        if next_uri is None:
            break
        document = api.client.get(next_uri).json()
        assert document["metadata"]["prev_page_uri"] is not None
    assert pages == 5
    assert seen == [entry["id"] for entry in reversed(created)]  # newest first


def test_page_size_100_and_offsets(trunk: TrunkApi, api: Api) -> None:
    whitelist_many(trunk, 120)
    first = trunk.get("whitelisted-ips", params={"page_size": 100}).json()
    assert len(first["response"]) == 100
    second = api.client.get(first["metadata"]["next_page_uri"]).json()
    assert len(second["response"]) == 20
    assert second["metadata"]["next_page_uri"] is None
    assert second["metadata"]["prev_page_uri"].endswith("?offset=0&page_size=100")
    middle = trunk.get("whitelisted-ips", params={"offset": 7, "page_size": 5}).json()
    assert middle["metadata"]["prev_page_uri"].endswith("?offset=2&page_size=5")
    assert middle["metadata"]["next_page_uri"].endswith("?offset=12&page_size=5")


def test_a_page_past_the_end_has_metadata_and_no_items(trunk: TrunkApi) -> None:
    whitelist_many(trunk, 3)
    document = trunk.get("whitelisted-ips", params={"offset": 10}).json()
    assert document["response"] == []
    assert document["metadata"]["next_page_uri"] is None
    assert document["metadata"]["page_size"] == 50


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "ten"},
        {"offset": -1},
        {"offset": "1.5"},
        {"page_size": "1_0"},
    ],
)
def test_bad_page_parameters_are_1002(trunk: TrunkApi, params: dict[str, Any]) -> None:
    assert error(trunk.get("whitelisted-ips", params=params))[:3] == (400, 400, 1002)


def test_every_child_list_paginates(api: Api, trunk: TrunkApi) -> None:
    for i in range(3):
        trunk.map(f"+9180402642{i:02d}")
        ok_response = trunk.post("credentials", {"user_name": f"u{i}", "password": "p"})
        assert ok_response.status_code == 200
    trunk.post(
        "destination-uris",
        {
            "destinations": [
                {"destination": f"sip{i}.example.com:5061;transport=tls"} for i in range(3)
            ]
        },
    )
    for child in ("phone-numbers", "credentials", "destination-uris"):
        assert len(trunk.items(child, page_size=2)) == 3
        assert len(trunk.get(child, params={"page_size": 2}).json()["response"]) == 2


def test_a_huge_offset_is_an_empty_page(trunk: TrunkApi) -> None:
    whitelist_many(trunk, 2)
    for offset in ("99999999999", "9" * 5000):
        document = trunk.get("whitelisted-ips", params={"offset": offset}).json()
        assert document["response"] == []
        assert document["metadata"]["next_page_uri"] is None
