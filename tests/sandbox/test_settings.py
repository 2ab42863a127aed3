"""Trunk settings: the outbound alias, upserted in a batch."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandboxes import Api, TrunkApi, error, ok

ALIAS = "+918040264208"


@pytest.fixture
def trunk(api: Api) -> TrunkApi:
    return api.trunk(api.create_trunk())


def put(trunk: TrunkApi, *settings: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = trunk.post("settings", {"settings": list(settings)})
    return response.status_code, response.json()


def test_set_alias(trunk: TrunkApi) -> None:
    status, document = put(trunk, {"name": "trunk_external_alias", "value": ALIAS})
    assert status == 200
    # As captured from the live API: no "failed" when nothing failed.
    assert document["metadata"] == {"total": 1, "success": 1}
    data = document["response"][0]["data"]
    assert list(data) == ["name", "value", "trunk_sid", "date_created", "date_updated"]
    assert (data["name"], data["value"], data["trunk_sid"]) == (
        "trunk_external_alias",
        ALIAS,
        trunk.sid,
    )
    assert trunk.items("settings") == [data]


def test_set_upserts(trunk: TrunkApi) -> None:
    put(trunk, {"name": "trunk_external_alias", "value": ALIAS})
    put(trunk, {"name": "trunk_external_alias", "value": "+919876543210"})
    assert [s["value"] for s in trunk.items("settings")] == ["+919876543210"]


def test_alias_need_not_be_a_mapped_did_but_must_be_e164(trunk: TrunkApi) -> None:
    status, document = put(
        trunk,
        {"name": "trunk_external_alias", "value": "08040264208"},
        {"name": "no_such_setting", "value": "1"},
        {"name": "trunk_external_alias"},
    )
    assert status == 207
    assert document["metadata"] == {"total": 3, "success": 0, "failed": 3}
    codes = [item["error_data"]["code"] for item in document["response"]]
    assert codes == [1002, 1002, 1001]
    assert trunk.items("settings") == []


def test_batch_shape_errors(trunk: TrunkApi) -> None:
    assert error(trunk.post("settings", {}))[:3] == (400, 400, 1001)
    assert error(trunk.post("settings", {"settings": []}))[:3] == (400, 400, 1001)
    assert error(trunk.post("settings", {"settings": {"name": "x"}}))[:3] == (400, 400, 1007)
    assert error(trunk.post("settings", {"settings": [{"name": 1, "value": "x"}]}))[2] == 1007


def test_delete_by_name(trunk: TrunkApi) -> None:
    put(trunk, {"name": "trunk_external_alias", "value": ALIAS})
    assert ok(trunk.delete("settings", params={"name": "trunk_external_alias"}))["value"] == ALIAS
    assert trunk.items("settings") == []
    assert error(trunk.delete("settings", params={"name": "trunk_external_alias"}))[2] == 1000
    assert error(trunk.delete("settings"))[2] == 1001
